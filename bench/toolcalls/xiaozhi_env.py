"""What else a 小智 voice model is offered beside our tools (``--environment xiaozhi``).

A self-hosted xiaozhi-esp32-server (0.9.x) merges every source into the one ``tools`` array it
sends each turn: its own plugin functions (``handle_exit_intent`` and ``play_music`` always;
``change_role``, ``web_search``, ``get_weather`` and ``get_news_from_newsnow`` in its default
``function_call`` config) and the device's own MCP tools (an ESP32's ``self.*`` tools, their
dots made underscores). Names and argument shapes are those of the server and firmware; the
descriptions are ours, short and in their spirit (NOTES: learn from their code, copy none).

A call to one of these is no call of a product tool: for a turn that should call none of ours
(thanks, weather, music) it is a right answer; for a turn that should call one of ours it is
not that call.
"""

from __future__ import annotations

from typing import Any


def _tool(name: str, description: str, properties: dict[str, Any], required: list[str]) -> Any:
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {"type": "object", "properties": properties, "required": required},
        },
    }


_TEXT = {"type": "string"}
_LANG = {"type": "string", "description": "用户的语言代码，如 zh_CN、en_US，默认 zh_CN"}
_PERCENT = {"type": "integer", "minimum": 0, "maximum": 100}

XIAOZHI_TOOLS: list[dict[str, Any]] = [
    _tool(
        "handle_exit_intent",
        "用户要结束对话或退出时调用",
        {"say_goodbye": {**_TEXT, "description": "对用户说的告别语"}},
        ["say_goodbye"],
    ),
    _tool(
        "play_music",
        "用户要听音乐、放歌时调用",
        {"song_name": {**_TEXT, "description": "歌名；没说具体哪首时为 random"}},
        ["song_name"],
    ),
    _tool(
        "change_role",
        "用户要换角色、换助手性格或名字时调用",
        {
            "role_name": {**_TEXT, "description": "新角色的名字"},
            "role": {**_TEXT, "description": "新角色的职业"},
        },
        ["role", "role_name"],
    ),
    _tool(
        "web_search",
        "用户明确要上网搜索一个问题时调用",
        {"query": {**_TEXT, "description": "要搜索的关键词或问题"}},
        ["query"],
    ),
    _tool(
        "get_weather",
        "查某个地方的天气；本地天气已在上下文里，用户没说别的城市时不要调用",
        {"location": {**_TEXT, "description": "地点名，如杭州；可不传"}, "lang": _LANG},
        ["lang"],
    ),
    _tool(
        "get_news_from_newsnow",
        "用户要看新闻、听新闻时调用",
        {
            "source": {**_TEXT, "description": "新闻源的中文名，可不传"},
            "detail": {"type": "boolean", "description": "是否要上一条新闻的详细内容"},
            "lang": _LANG,
        },
        ["lang"],
    ),
    _tool("self_get_device_status", "查设备自身的状态：音量、屏幕、电量、网络", {}, []),
    _tool(
        "self_audio_speaker_set_volume",
        "设置设备扬声器的音量",
        {"volume": _PERCENT},
        ["volume"],
    ),
    _tool(
        "self_screen_set_brightness",
        "设置设备屏幕的亮度",
        {"brightness": _PERCENT},
        ["brightness"],
    ),
]

ENVIRONMENTS: dict[str, list[dict[str, Any]]] = {"none": [], "xiaozhi": XIAOZHI_TOOLS}
