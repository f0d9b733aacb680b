"""`ambient chat` as a person runs it: a subprocess, a scripted model on loopback."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from ambient.domain.users import UserCreate
from ambient.runtime import RuntimeInfo, write_runtime
from ambient.storage import Database
from ambient.storage.migrate import upgrade_async
from ambient.storage.users import UserRepository, not_registered
from tests.standins.llm_api import API_KEY, Content, LLMApi, ToolCalls
from tests.support.servers import serve


async def _run(env: dict[str, str], *args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ambient.cli",
        "chat",
        *args,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(), timeout=120)
    return process.returncode or 0, out.decode()


async def _chat_env(
    tmp_path: Path, dev_env: WorkflowEnvironment, users: dict[str, str | None]
) -> dict[str, str]:
    """A migrated database with ``users`` (name → assistant name, None: the default) and the
    environment `ambient chat` runs in against it and ``dev_env``, without a model."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'ambient.db'}"
    await upgrade_async(url)
    db = Database(url)
    async with db.session() as session:
        for name, assistant in users.items():
            user, _ = await UserRepository(session).create(UserCreate(name=name))
            if assistant is not None:
                user.assistant_name = assistant
        await session.commit()
    await db.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AMBIENT_", "OPENAI_"))}
    return env | {
        "AMBIENT_DATA_DIR": str(tmp_path),
        "AMBIENT_DATABASE_URL": url,
        "AMBIENT_TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
        "COLUMNS": "200",
    }


async def test_chat_command_answers_with_tool_results_and_explains_offline_mode(
    tmp_path: Path, dev_env: WorkflowEnvironment
) -> None:
    env = await _chat_env(tmp_path, dev_env, {"ops": None})

    # One message the command could not answer exits 1, saying why (a script reads it).
    code, out = await _run(env, "--user", "ops", "hello")
    assert code == 1 and "OPENAI_API_KEY" in out

    # A model's words are printed as they are: brackets are not markup (a '[/INST]' was a
    # MarkupError traceback mid-chat, an '[admin]' vanished). So is a tool name the model made
    # up (a '[/]' was a MarkupError traceback mid-chat). One command for all: each start of
    # `ambient chat` costs seconds of the suite's CPU. (An unknown user's refusal:
    # test_the_unregistered_user_refusal_is_one_line_in_a_pipe.)
    llm = LLMApi()
    llm.script(
        ToolCalls([("get_status", {})]),
        ToolCalls([("get_[/]status", {})]),
        Content("Everything is up. Ask [admin] about [/INST] tokens."),
    )
    async with serve(llm.app()) as llm_url:
        env |= {"OPENAI_API_KEY": API_KEY, "OPENAI_BASE_URL": f"{llm_url}/v1"}
        code, out = await _run(env, "--user", "ops", "is everything up?")
    assert code == 0, out
    assert "→ get_status" in out and "← get_status ok" in out, out
    # The tool's answer reached the model as a tool message.
    assert '"temporal_reachable": true' in llm.requests[1]["messages"][-1]["content"]
    assert "← get_[/]status failed" in out, out
    assert "Everything is up. Ask [admin] about [/INST] tokens." in out, out


async def test_the_interactive_prompt_shows_an_assistant_name_with_brackets_as_written(
    tmp_path: Path, dev_env: WorkflowEnvironment
) -> None:
    # A '[/]' was a MarkupError traceback, '[b]ot[/b]' and '[ops]' vanished as markup: one
    # name holds them all (one start of the command, not one each).
    env = await _chat_env(tmp_path, dev_env, {"ann": "[/] [b]ot[/b] [ops]"})
    # No message: the interactive session, whose prompt names the assistant (stdin is empty,
    # so it ends at the first prompt).
    code, out = await _run(env, "--user", "ann")
    assert code == 0 and "Traceback" not in out and "you → [/] [b]ot[/b] [ops]" in out, out


async def _asked_again_and_again(
    tmp_path: Path, dev_env: WorkflowEnvironment, *options: str
) -> tuple[int, str, LLMApi]:
    """`ambient chat` with ``options``, its model asking for the same write after each answer."""
    env = await _chat_env(tmp_path, dev_env, {"ops": None})
    llm = LLMApi(responder=lambda _: ToolCalls([("delete_task", {"task_id": "web-monitor/x"})]))
    async with serve(llm.app()) as llm_url:
        env |= {"OPENAI_API_KEY": API_KEY, "OPENAI_BASE_URL": f"{llm_url}/v1"}
        code, out = await _run(env, "--user", "ops", *options, "delete the x monitor")
    return code, out, llm


async def test_a_write_asked_for_again_and_again_with_nobody_to_confirm_is_declined_once(
    tmp_path: Path, dev_env: WorkflowEnvironment
) -> None:
    # No terminal and no --yes: the write is declined. A small model that asks for the same
    # call after each refusal ran the command forever (asking the model again and again).
    code, out, llm = await _asked_again_and_again(tmp_path, dev_env)
    assert code == 1, out  # what was asked was not done
    assert len(llm.requests) == 2, out  # asked, then told it was declined: no more
    assert out.count("! delete_task") == 2 and "← delete_task failed declined" in out, out


async def test_yes_approves_a_bounded_number_of_rounds_for_one_message(
    tmp_path: Path, dev_env: WorkflowEnvironment
) -> None:
    # --yes approved every confirm: a model that asks for another write after each result
    # (the small local one repeats its calls) ran it on and on, the command never ending.
    code, out, llm = await _asked_again_and_again(tmp_path, dev_env, "--yes")
    assert code == 1, out
    assert "--yes approved 5 rounds of calls for this message: declined the rest" in out, out
    # Asked, five rounds run and each answered, then told it was declined: no more.
    assert len(llm.requests) == 7, out


async def test_chat_finds_the_running_dev_stack_as_every_command_does(
    tmp_path: Path, dev_env: WorkflowEnvironment
) -> None:
    # It read the settings alone: beside `ambient dev --temporal-port N` its tools asked
    # Temporal at localhost:7233 (and the local model of `--local-llm` was never found).
    env = await _chat_env(tmp_path, dev_env, {"ops": None})
    address = env.pop("AMBIENT_TEMPORAL_ADDRESS")
    info = RuntimeInfo(pid=os.getpid(), temporal_address=address, api_host="127.0.0.1", api_port=1)
    write_runtime(tmp_path, info)
    llm = LLMApi()
    llm.script(ToolCalls([("get_status", {})]), Content("Everything is up."))
    async with serve(llm.app()) as llm_url:
        env |= {"OPENAI_API_KEY": API_KEY, "OPENAI_BASE_URL": f"{llm_url}/v1"}
        code, out = await _run(env, "--user", "ops", "is everything up?")
    assert code == 0 and "Everything is up." in out, out
    said = json.loads(llm.requests[1]["messages"][-1]["content"])
    # Found (the default localhost:7233 answers nothing here); where it runs is an admin's.
    assert (said["temporal_reachable"], said["temporal_address"]) == (True, None), said


async def test_the_unregistered_user_refusal_is_one_line_in_a_pipe(
    tmp_path: Path, dev_env: WorkflowEnvironment
) -> None:
    # A pipe is 80 columns to Rich: the refusal broke mid-name, unlike every other command's.
    env = await _chat_env(tmp_path, dev_env, {})
    env.pop("COLUMNS")
    name = "a-user-name-long-enough-to-pass-the-eightieth-column"
    code, out = await _run(env, "--user", name, "hi")
    assert code == 1 and out == f"{not_registered(name)}\n", out
