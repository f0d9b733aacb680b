"""The discussion bus: rules (pure), membership, reading, signing; people and agents talk here."""
