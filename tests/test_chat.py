"""Chat with the model while it trains (docs/chat.md): answers at a step boundary leave training exact, stream as
`chat` events beside the base model's, score a reference, and reach the CLI live and after the run."""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.helpers import TINY, step_losses, train_in_process, write_alpaca
from tests.live_helpers import LONG, live_env, nlirg, private_runtime_dir, start_detached, wait_for
from trainer_core.live.chat import CHAT_FILE, ChatRequestError, export_history, parse_chat_args, read_history
from trainer_core.live.control import Command
from trainer_core.live.events import read_events

LORA = [*TINY, "lora.enabled=true", "lora.r=4", "lora.dropout=0.1", "training.lr=0.01", "data.eval_fraction=0",
        "training.eval_every=0", "training.save_every=0"]
ASK = {"prompt": "What is 3 plus 3?", "max_new_tokens": 12, "temperature": 0.9, "top_p": 0.95, "seed": 7,
       "reference": "The answer is 6."}


def test_a_request_is_checked_field_by_field():
    assert parse_chat_args({"prompt": "hi", "max_new_tokens": 5.0}).max_new_tokens == 5
    for args, field in [({"prompt": " "}, "prompt"), ({"prompt": "hi", "max_new_tokens": 0}, "max_new_tokens"),
                        ({"prompt": "hi", "temperature": "hot"}, "temperature"), ({"prompt": "x" * 20_000}, "prompt"),
                        ({"prompt": "hi", "base": "yes"}, "base"), ({"prompt": "hi", "colour": 1}, "colour")]:
        with pytest.raises(ChatRequestError, match=field):
            parse_chat_args(args)


def _ask_at(step: int, args: dict):
    """before_fit hook: queue one `generate` right after optimizer step `step` (a real step boundary)."""

    def hook(trainer):
        plain = trainer.train_step

        def train_step():
            plain()
            if trainer.step + 1 == step:
                trainer.commands.put(Command("generate", dict(args), id="q1", ack=acks.append))

        trainer.train_step = train_step

    acks: list = []
    return hook, acks


def test_answering_mid_run_leaves_training_exactly_where_it_was(tmp_path):
    data = write_alpaca(tmp_path / "train.jsonl", n=16)
    sets = [*LORA, f"data.train={data}", "training.max_steps=6"]
    train_in_process(tmp_path / "plain", sets)
    hook, acks = _ask_at(3, ASK)
    train_in_process(tmp_path / "asked", sets, before_fit=hook)

    assert acks and acks[0]["ok"], acks
    assert step_losses(tmp_path / "asked") == step_losses(tmp_path / "plain")  # not close: equal
    chats = [e for e in read_events(tmp_path / "asked" / "events.jsonl") if e["type"] == "chat"]
    done = {e["model"]: e for e in chats if e["done"]}
    assert set(done) == {"tuned", "base"}  # a LoRA run: the adapter switched off answers too
    for model, event in done.items():
        streamed = "".join(e["text"] for e in chats if e["model"] == model)
        assert streamed.strip() == event["answer"] and event["step"] == 3 and 0 < event["tokens"] <= 12
    scored = done["tuned"]["reference"]
    assert len(scored["tokens"]) == len(scored["losses"]) == len(scored["zones"]) >= 2
    assert "".join(scored["tokens"]).startswith("The answer is 6.")
    assert all(z in (0, 1, 2, 3) for z in scored["zones"])
    history = read_history(tmp_path / "asked")
    assert [h["prompt"] for h in history] == [ASK["prompt"]] and history[0]["answer"] == done["tuned"]["answer"]
    assert history[0]["base_answer"] == done["base"]["answer"]


def test_a_prompt_past_data_max_length_is_refused_in_one_line(tmp_path):
    data = write_alpaca(tmp_path / "train.jsonl", n=8)
    hook, acks = _ask_at(1, {"prompt": "word " * 200, "max_new_tokens": 8})
    _, status = train_in_process(tmp_path / "run", [*LORA, f"data.train={data}", "training.max_steps=2"],
                                 before_fit=hook)
    assert status == "completed"  # the trainer never dies of a chat request
    assert not acks[0]["ok"] and "data.max_length 96 leaves no room" in acks[0]["error"]


def test_export_writes_training_records(tmp_path):
    (tmp_path / CHAT_FILE).write_text(
        json.dumps({"prompt": "Q1", "answer": "model says", "reference": "better"}) + "\n"
        + json.dumps({"prompt": "Q2", "answer": "fine", "system": "Be brief."}) + "\n{torn", encoding="utf-8")
    out = tmp_path / "more.jsonl"
    assert export_history(tmp_path, out, "alpaca") == 2
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert rows[0] == {"instruction": "Q1", "input": "", "output": "better"}  # the corrected answer wins
    assert rows[1]["output"] == "fine" and rows[1]["system"] == "Be brief."
    export_history(tmp_path, out, "messages")
    first = json.loads(out.read_text(encoding="utf-8").splitlines()[1])
    assert [m["role"] for m in first["messages"]] == ["system", "user", "assistant"]


@pytest.mark.slow
def test_nlirg_chat_live_paused_and_after_the_run(tmp_path):
    env = live_env(private_runtime_dir())
    run = start_detached(tmp_path, env, max_steps=LONG, extra=LORA[len(TINY):])
    wait_for(lambda: any(e["type"] == "step" for e in read_events(run / "events.jsonl")), "a first step")
    live = nlirg("chat", str(run), "--prompt", "What is 2 plus 2?", "--max-new-tokens", "6", cwd=tmp_path, env=env)
    assert live.returncode == 0, live.stderr
    assert "[tuned, step " in live.stdout and "[base] " in live.stdout

    assert nlirg("pause", str(run), cwd=tmp_path, env=env).returncode == 0
    paused = nlirg("chat", str(run), "-p", "Hi", "--max-new-tokens", "4", "--no-base", cwd=tmp_path, env=env)
    assert paused.returncode == 0 and "run paused: answered anyway" in paused.stdout and "[base]" not in paused.stdout
    empty = nlirg("chat", str(run), "-p", "", cwd=tmp_path, env=env)
    assert empty.returncode == 2 and "needs a prompt" in empty.stderr and "Traceback" not in empty.stderr

    assert nlirg("stop", str(run), cwd=tmp_path, env=env).returncode == 0
    after = nlirg("chat", str(run), "-p", "What is 2 plus 2?", "--max-new-tokens", "6", "--reference", "4",
                  cwd=tmp_path, env=env)
    assert after.returncode == 0, after.stderr
    assert "[tuned" in after.stdout and "[base] " in after.stdout and "reference: mean loss" in after.stdout
    assert len(read_history(run)) == 3
    out = tmp_path / "chat-records.jsonl"
    exported = nlirg("chat", str(run), "--export", str(out), cwd=tmp_path, env=env)
    assert exported.returncode == 0 and len(out.read_text(encoding="utf-8").splitlines()) == 3

    # The workbench: `t` on the run's screen, a question and an expected answer, Enter.
    head, scored = asyncio.run(_ask_in_the_workbench(run))
    assert "[done]" in head and "tokens" in head
    assert scored.startswith("expected answer: The answer is 4.") and "mean loss" in scored
    assert len(read_history(run)) == 4


async def _ask_in_the_workbench(run) -> tuple[str, str]:
    from nlirg_tui.app import NlirgApp

    app = NlirgApp(run_dir=run)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        await pilot.press("t")
        await pilot.pause()
        await pilot.press(*"What is 2 plus 2?", "tab", *"The answer is 4.", "enter")
        head = app.screen.query_one("#chat-tuned-head")
        for _ in range(600):
            if "[done]" in str(head.render()):
                break
            await pilot.pause(0.2)
        scored = str(app.screen.query_one("#chat-scored").render())
        return str(head.render()), scored
