"""The live-link protocol v1 (docs/design.md §4, contract): the one vocabulary the trainer and every client share.

Torch-free and textual-free: the trainer's event log and server, the TUI's store and link, and the CLI all
import their message definitions from here (docs/live.md describes the same for people).

Framing: one JSON object per line, UTF-8, at most `MAX_LINE_BYTES` a line, every object has `v` (1) and
`type`. Two kinds of message go from the trainer to a client:

- events (`EVENTS`: status, step, eval, flagged, checkpoint, log, error, command, end) carry `seq` and `ts`
  (`EventEnvelope`) and are the lines of `events.jsonl`; an `eval` event with `kind: "generation"` holds answer
  metrics instead of a held-out loss (`EVENT_VARIANTS`);
- replies (`REPLIES`: hello, ack, and an error answering this client's bad input) have no `seq`.

A client sends (`parse_client_message` checks them into a `Replay` or a `CommandRequest`):

- `{"v":1,"type":"replay","from_seq":N}`: every event with seq >= N, then the live stream, without a gap or a
  duplicate. Events flow only after a replay; for the live stream alone use `from_seq = hello.last_seq + 1`.
  One replay per connection.
- `{"v":1,"type":"command","id":ID,"name":NAME,"args":{...}}` with NAME in `COMMANDS`; answered with an `Ack`
  once the trainer applies it at a step boundary (`ping` is answered at once). `set` takes the keys of
  `SETTABLE`; the other commands take no arguments.

Each event and reply definition below is a TypedDict of the message's fields without `v` and `type` (and, for
events, without `seq` and `ts`); `event_problems` / `reply_problems` check a whole decoded message against them.
(No `from __future__ import annotations` here: TypedDict sees `NotRequired` only in evaluated annotations.)
"""

import dataclasses
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated, Any, Literal, get_args

from typing_extensions import NotRequired, TypedDict, get_type_hints

from trainer_core.config.choices import Weighting
from trainer_core.config.schema import NlirgParams
from trainer_core.live.shapes import Length, keys_problems, problems
from trainer_core.quoting import quoted

PROTOCOL_VERSION = 1
MAX_LINE_BYTES = 1 << 20
"""The longest line either side accepts, newline excluded; a longer one closes the connection. The trainer never
writes a longer event (`live.line_limit` cuts oversized fields)."""
MAX_COMMAND_BYTES = 8 * 1024
"""The longest command line a client may send (every settable key at once fits in under 1 KiB); a longer one is
refused with an ack before anything reaches the trainer."""
MAX_GENERATE_BYTES = 64 * 1024
"""The longest `generate` command line (a prompt and a reference of up to 16,000 characters each)."""
MAX_ID_CHARS = 128
"""The longest command `id` (it is echoed in the ack and recorded in the run's history)."""

ZONES = 4
"""NLIRG zones, in this order in every `zone_*` list: easy (cut), boost, hard (cut), zeroed (docs/design.md §5)."""
LOSS_HIST_BINS = 41
"""`loss_hist` bins: 0.5 wide from 0 to 20, then one overflow bin (docs/design.md §5)."""
LOSS_HIST_WIDTH = 0.5

RunStatus = Literal["starting", "running", "paused", "completed", "stopped", "failed"]
LIVE_STATUSES: tuple[RunStatus, ...] = ("starting", "running", "paused")
"""A trainer process exists in these (trainer.json; a run whose pid is gone shows as `dead`)."""
END_STATUSES: tuple[RunStatus, ...] = ("completed", "stopped", "failed")
"""The statuses an `end` event (and summary.json) can carry."""

CommandName = Literal["pause", "resume", "save", "stop", "set", "ping", "generate"]
"""pause (at the next step boundary), resume, save (a checkpoint there), stop (finish the step, save, write the
summary and exit), set (settings from the next step on), ping (answered at once: is the trainer there), generate
(answer a prompt with the weights of that step boundary, streamed as `chat` events, then train on: docs/chat.md)."""
COMMANDS: tuple[str, ...] = get_args(CommandName)
CommandId = str | int | None
"""A client's own id for a command, echoed in its ack (None when the client sent none)."""
ZoneCounts = Annotated[list[int], Length(ZONES)]
ZoneShares = Annotated[list[float], Length(ZONES)]


class ProtocolError(ValueError):
    """A line that breaks the protocol; the message says what is wrong and how to fix it."""

    def __init__(self, message: str, cmd_id: CommandId = None):
        super().__init__(message)
        self.cmd_id = cmd_id
        """A refused command's own id, once checked (None otherwise): the refusal is then an ack it can match."""


# ---------------------------------------------------------------------------------------------- events
class EventEnvelope(TypedDict):
    """What every event line has besides its own fields."""

    v: int
    type: str
    seq: int
    """Monotonically increasing from 0 within a run, across resumes."""
    ts: float
    """Unix time the trainer emitted it."""


class StatusEvent(TypedDict):
    """The loop began, paused or resumed (with `step`, `total_steps`); or, while the status is `starting`,
    data preparation's progress (with `phase`, `done`, `total`, `samples_per_s`: docs/data.md)."""

    status: Literal["starting", "running", "paused"]
    step: NotRequired[int]
    total_steps: NotRequired[int]
    phase: NotRequired[str]
    """The preparation stage (e.g. reading, tokenizing)."""
    done: NotRequired[int]
    total: NotRequired[int]
    samples_per_s: NotRequired[float]


class Memory(TypedDict, total=False):
    """One rank's memory in bytes: allocated/reserved/peak on a GPU, rss/peak on the CPU; in `rank_memory`, also
    the rank's node (`--node-rank` of a multi-node launch, else 0) and host name."""

    allocated: int
    reserved: int
    peak: int
    rss: int
    node_rank: int
    host: str


class StepEvent(TypedDict):
    """One logged optimizer step's telemetry (docs/design.md §5), reduced on the device and synced once."""

    step: int
    total_steps: int
    epoch: float
    """Epochs done, fractional."""
    samples_done: int
    loss: float | None
    """Unweighted mean cross-entropy over the interval's target tokens (None when not finite)."""
    weighted_loss: float | None
    lr: float
    grad_norm: float | None
    target_tokens: int
    input_tokens: int
    tokens_per_s: float
    target_tokens_per_s: float
    zone_counts: ZoneCounts
    zone_counts_total: ZoneCounts
    """Since the start of the run (summing to summary.json's train_tokens at the end)."""
    zone_grad_share: ZoneShares
    """Each zone's share of sum(w·L)."""
    loss_hist: Annotated[list[int], Length(LOSS_HIST_BINS)]
    special_tokens: NotRequired[int]
    """Special (structural) target tokens of the interval: end of turn, EOS, role markers. With
    nlirg.protect_special_tokens (and nlirg weighting) they train with weight 1 and are not in zone_counts, so
    sum(zone_counts) + special_tokens == target_tokens; otherwise they are in the zones like any token."""
    skipped_steps: int
    memory: Memory
    step_time_s: float
    model_tflops: float
    """Model FLOPs per second over the interval, all ranks together (docs/memory.md says what is counted)."""
    mfu: float | None
    """model_tflops over the devices' peak (telemetry.peak_tflops or a known GPU's); None when the peak is unknown."""
    rank_memory: list[Memory]
    world_size: int
    base_weights: NotRequired[str]
    """How the frozen base's weights are held: `nf4 (4-bit)`, `fp4 (4-bit)`, `int8 (8-bit)` (QLoRA,
    model.quantization), else their dtype (`float32`, `bfloat16`)."""


class EvalEvent(TypedDict):
    step: int
    epoch: float
    eval_loss: float | None
    eval_weighted_loss: float | None
    zone_counts: ZoneCounts
    target_tokens: int
    special_tokens: NotRequired[int]
    """As in the step event."""


class GenerationExample(TypedDict):
    """One held-out prompt with the model's greedy answer, each cut to 400 characters."""

    where: str
    """The file and line of the item."""
    prompt: str
    output: str
    reference: str


class GenerationEvalEvent(TypedDict):
    """An `eval` event with `kind: "generation"` (eval.generate_every): greedy answers to held-out prompts,
    scored as `nlirg eval` scores them (docs/evaluate.md); None where the set gives the metric nothing to count."""

    kind: Literal["generation"]
    step: int
    epoch: float
    domain_accuracy: float | None
    domain_exact_match: float | None
    repetition_3gram: float | None
    distinct_2: float | None
    json_valid_rate: float | None
    """None without JSON items."""
    hit_limit_rate: float | None
    items: int
    tokens_per_s: float
    examples: list[GenerationExample]


class FlaggedSample(TypedDict):
    """A sample with zeroed tokens or a high mean loss, token by token (the Inspector's input)."""

    sample_id: int
    step: int
    source: str | None
    """The data file the record came from (None for a builtin or unknown record)."""
    line: int | None
    id: str | int | None
    """The record's own id field, where the data has one."""
    mean_loss: float
    max_loss: float
    zeroed_tokens: int
    target_tokens: int
    tokens: list[str]
    losses: list[float | None]
    """Per token; None where the token is not a target."""
    weights: list[float | None]
    zones: list[int | None]
    offset: NotRequired[int]
    """Position of the first token shown: a sample longer than the window (512 tokens) shows the tokens around
    its zeroed ones, and `tokens`/`losses`/`weights`/`zones` cover only those."""
    length: NotRequired[int]
    """The sample's tokens in all (`zeroed_tokens` and `target_tokens` count over all of them)."""


class FlaggedEvent(TypedDict):
    step: int
    samples: list[FlaggedSample]


class CheckpointEvent(TypedDict):
    step: int
    path: str


class LogEvent(TypedDict):
    level: Literal["info", "warning"]
    message: str


SPECIAL_ZEROED_PREFIX = "special tokens zeroed: "
"""A warning `log` message that starts with this names the special token NLIRG zeroes most (`most often 'TOKEN'`)
and the option that protects it; the trainer sends it at most once per process, the workbench header shows it."""


class ErrorEvent(TypedDict):
    message: str
    step: NotRequired[int]
    fatal: NotRequired[bool]
    """True when the trainer exits because of it (an `end` with status failed follows)."""


class CommandEvent(TypedDict):
    """A command the trainer applied: the run's history of who changed what when."""

    id: CommandId
    name: CommandName
    args: dict[str, Any]
    applied_at_step: int
    source: str
    """`client N (pid P)`, or `signal SIGTERM`."""


class ScoredTokens(TypedDict):
    """A reference answer's tokens under the model of that step: loss, NLIRG weight and zone each (the
    Inspector's colours for the user's own example)."""

    tokens: list[str]
    losses: list[float]
    weights: list[float]
    zones: list[int]
    mean_loss: float


class ChatEvent(TypedDict):
    """A piece of the answer to a `generate` command (`request` is its id), streamed while it is written; the
    last piece of each model's answer has `done` and the whole answer with its counts."""

    request: CommandId
    model: Literal["tuned", "base"]
    """`tuned`: the weights being trained; `base`: the same with the LoRA adapter switched off."""
    step: int
    text: str
    """The text added since this answer's previous event."""
    done: bool
    answer: NotRequired[str]
    tokens: NotRequired[int]
    seconds: NotRequired[float]
    """Time spent on this answer (not counted in the run's tokens/s)."""
    hit_limit: NotRequired[bool]
    paused: NotRequired[bool]
    """The run was paused: answered anyway."""
    reference: NotRequired[ScoredTokens]


class Summary(TypedDict):
    """summary.json (docs/design.md §3), also carried by the `end` event."""

    status: RunStatus
    reason: str | None
    steps: int
    total_steps: int
    epochs_done: float
    train_tokens: int
    input_tokens: int
    tokens_per_s: float | None
    final_loss: float | None
    final_weighted_loss: float | None
    zone_counts: ZoneCounts
    special_tokens: NotRequired[int]
    """Since the start of the run, as in the step event: sum(zone_counts) + special_tokens == train_tokens
    when they are protected."""
    skipped_steps: int
    eval: EvalEvent | None
    wall_s: float
    peak_memory_bytes: int
    world_size: int
    weighting: Weighting
    data: dict[str, Any]
    """Per data source what it holds and gave the run (`train.data.report.data_summary`)."""


class EndEvent(TypedDict):
    """The run is over; nothing follows."""

    status: Literal["completed", "stopped", "failed"]
    reason: str
    summary: NotRequired[Summary]
    """Absent when the run failed before training began."""


EVENTS: dict[str, type] = {
    "status": StatusEvent, "step": StepEvent, "eval": EvalEvent, "flagged": FlaggedEvent,
    "checkpoint": CheckpointEvent, "log": LogEvent, "error": ErrorEvent, "command": CommandEvent, "end": EndEvent,
    "chat": ChatEvent,
}
"""Every event type and its fields."""

EVENT_VARIANTS: dict[tuple[str, str], type] = {("eval", "generation"): GenerationEvalEvent}
"""(type, kind) -> the fields of an event whose `kind` selects another definition than its type's."""


def event_definition(type_: str, payload: dict[str, Any]) -> type:
    """The TypedDict an event of this type (and `kind`, where it has one) must fit; the type must be known."""
    return EVENT_VARIANTS.get((type_, payload.get("kind")), EVENTS[type_])


# ---------------------------------------------------------------------------------------------- replies
class Hello(TypedDict):
    """Sent once on connect, from the moment the trainer process exists (the model may still load)."""

    protocol: int
    run_id: str
    name: str
    status: RunStatus
    step: int
    total_steps: int | None
    """None while the model loads."""
    config: dict[str, Any]
    """The resolved run config (`RunConfig.to_dict()`)."""
    last_seq: int
    pid: int


class Ack(TypedDict):
    """The answer to one command."""

    id: CommandId
    ok: bool
    error: str | None
    applied_at_step: int | None
    """The step boundary it was applied at (None only in a client's own refusal, with no trainer to ask)."""


class ErrorReply(TypedDict):
    """An answer to this client's bad input; not part of the run's history (no `seq`)."""

    message: str
    id: NotRequired[CommandId]


REPLIES: dict[str, type] = {"hello": Hello, "ack": Ack, "error": ErrorReply}


# ---------------------------------------------------------------------------------------------- set
SETTABLE: dict[str, Any] = {
    "lr_scale": float, "log_every": int, "flag_threshold": float, "eval_every": int, "save_every": int,
    **{f"nlirg.{name}": hint for name, hint in get_type_hints(NlirgParams).items()},
}
"""What `set` may change on a running trainer, and each value's type. A bare NLIRG name (`k`) means
`nlirg.k`. The trainer checks the values as the config validator does (`trainer_core.live.control`)."""


def nlirg_key(key: str) -> str | None:
    """`nlirg.k` or `k` -> `k` when it names an NLIRG parameter; None otherwise."""
    short = key.removeprefix("nlirg.")
    return short if short in _NLIRG_FIELDS else None


_NLIRG_FIELDS = {f.name for f in dataclasses.fields(NlirgParams)}


# ---------------------------------------------------------------------------------------------- checking
def event_problems(event: dict[str, Any]) -> list[str]:
    """Every way a decoded event (an events.jsonl line) differs from its definition; empty when it fits."""
    kind = event.get("type")
    if kind not in EVENTS:
        return [f"event type {kind!r} is not one of {', '.join(EVENTS)}"]
    envelope = {k: event[k] for k in EventEnvelope.__required_keys__ if k in event}
    out = problems(envelope, EventEnvelope, kind)
    payload = {k: v for k, v in event.items() if k not in EventEnvelope.__required_keys__}
    return out + problems(payload, event_definition(kind, payload), kind)


def reply_problems(reply: dict[str, Any]) -> list[str]:
    """Every way a decoded reply differs from its definition; empty when it fits."""
    kind = reply.get("type")
    if kind not in REPLIES or reply.get("v") != PROTOCOL_VERSION:
        return [f"reply type {kind!r} (v={reply.get('v')!r}) is not one of {', '.join(REPLIES)} (v=1)"]
    return problems({k: v for k, v in reply.items() if k not in ("v", "type")}, REPLIES[kind], kind)


def check_event_fields(kind: str, payload: dict[str, Any]) -> None:
    """Raise when an emitter builds an event of an unknown type, or with missing or unknown fields (a bug).

    Only the keys are checked (cheap enough for every event); `event_problems` checks the values in tests.
    """
    if kind not in EVENTS:
        raise ProtocolError(f"event type {kind!r} is not one of {', '.join(EVENTS)}")
    found = keys_problems(payload, event_definition(kind, payload), f"{kind} event")
    if found:
        raise ProtocolError("; ".join(found) + " (the definition is in trainer_core.live.protocol)")


# ---------------------------------------------------------------------------------------------- framing
def encode(message: dict[str, Any]) -> bytes:
    """One protocol line (with `v` filled in); NaN/inf are refused so the peer always gets valid JSON."""
    out = {"v": PROTOCOL_VERSION, **message}
    return (json.dumps(out, ensure_ascii=False, allow_nan=False, separators=(",", ":"), default=str) + "\n").encode()


def decode(line: bytes | str) -> dict[str, Any]:
    """Parse one line (without or with its newline) into an object with a known `v` and a string `type`."""
    if isinstance(line, bytes):
        if len(line.rstrip(b"\r\n")) > MAX_LINE_BYTES:
            raise ProtocolError(f"line of {len(line)} bytes is over the {MAX_LINE_BYTES}-byte limit")
        try:
            line = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ProtocolError(f"line is not UTF-8 (byte {exc.start}); send one JSON object per line") from None
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ProtocolError(f"not JSON ({exc.msg} at column {exc.colno}); send one JSON object per line") from None
    except RecursionError:
        raise ProtocolError("JSON nested too deeply; protocol messages are flat objects") from None
    if not isinstance(obj, dict):
        raise ProtocolError(f"expected a JSON object, got {type(obj).__name__}")
    if type(obj.get("v")) is not int or obj["v"] != PROTOCOL_VERSION:  # not true, not 1.0: exactly the integer
        raise ProtocolError(f"unsupported protocol version v={quoted(obj.get('v'))}; send v={PROTOCOL_VERSION}")
    if not isinstance(obj.get("type"), str):
        raise ProtocolError('missing "type" (a string)')
    return obj


class LineReader:
    """Splits a byte stream into lines, refusing any line over `MAX_LINE_BYTES` before buffering more."""

    def __init__(self, limit: int = MAX_LINE_BYTES):
        self.limit = limit
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        """Complete lines in `data` (newline stripped); raises ProtocolError when a line grows past the limit."""
        self._buf += data
        lines = []
        start = 0
        while True:
            end = self._buf.find(b"\n", start)
            if end < 0:
                break
            if end - start > self.limit:
                raise ProtocolError(f"line over the {self.limit}-byte limit")
            lines.append(bytes(self._buf[start:end]))
            start = end + 1
        del self._buf[:start]
        if len(self._buf) > self.limit:
            raise ProtocolError(f"line over the {self.limit}-byte limit")
        return lines

    def messages(self, data: bytes) -> tuple[list[dict[str, Any]], int]:
        """`feed`, then `decode_lines`: the messages completed by `data`, and how many lines were none."""
        return decode_lines(self.feed(data))


def decode_lines(lines: Iterable[bytes]) -> tuple[list[dict[str, Any]], int]:
    """The protocol messages among `lines`, and how many lines were none (skipped; blank lines not counted).

    What a client does with the trainer's lines: a replay sends events.jsonl as written, so a line that a torn
    write or a person left there (`12`, `\\x00garbage{`) reaches every client, and a client that gave up on it
    would meet it again on every reconnect."""
    messages: list[dict[str, Any]] = []
    bad = 0
    for line in lines:
        if not line.strip():
            continue
        try:
            message = decode(line)
        except ProtocolError:
            bad += 1
            continue
        if "seq" in message and type(message["seq"]) is not int:  # no event a client could place in the history
            bad += 1
            continue
        messages.append(message)
    return messages, bad


# ---------------------------------------------------------------------------------------------- parsing client input
@dataclass(frozen=True)
class Replay:
    """`{"type": "replay", "from_seq": N}` (N >= 0, default 0: the whole history)."""

    from_seq: int


@dataclass(frozen=True)
class CommandRequest:
    """`{"type": "command", "id": ID, "name": NAME, "args": {...}}` (id optional, args default {})."""

    id: CommandId
    name: CommandName
    args: dict[str, Any]


ClientMessage = Replay | CommandRequest


def parse_client_message(obj: dict[str, Any], size: int = 0) -> ClientMessage:
    """Check a decoded client object's shape, `size` being its line's length in bytes (the meaning of `set`
    args is checked by `trainer_core.live.control.validate_command`)."""
    kind = obj["type"]
    if kind == "replay":
        from_seq = obj.get("from_seq", 0)
        if isinstance(from_seq, bool) or not isinstance(from_seq, int) or from_seq < 0:
            raise ProtocolError(f"replay.from_seq must be an integer >= 0, got {quoted(from_seq)}")
        return Replay(from_seq)
    if kind == "command":
        return _parse_command(obj, size)
    raise ProtocolError(f"unknown message type {quoted(kind)}; a client sends replay or command")


def _parse_command(obj: dict[str, Any], size: int) -> CommandRequest:
    """The id first: once it is known to be usable, every later refusal carries it (an ack, not an error)."""
    cmd_id = obj.get("id")
    if cmd_id is not None and (isinstance(cmd_id, bool) or not isinstance(cmd_id, (str, int))):
        raise ProtocolError(f"command.id must be a string or an integer, got {quoted(cmd_id)}")
    if isinstance(cmd_id, str) and len(cmd_id) > MAX_ID_CHARS:
        raise ProtocolError(f"command.id is {len(cmd_id)} characters; at most {MAX_ID_CHARS}")
    limit = MAX_GENERATE_BYTES if obj.get("name") == "generate" else MAX_COMMAND_BYTES
    if size > limit:
        raise ProtocolError(f"command line of {size} bytes is over the {limit}-byte limit for "
                            f"{'generate' if limit == MAX_GENERATE_BYTES else 'commands'}", cmd_id)
    name = obj.get("name")
    if name not in COMMANDS:
        raise ProtocolError(f"unknown command {quoted(name)}; known: {', '.join(COMMANDS)}", cmd_id)
    args = {} if obj.get("args") is None else obj["args"]
    if not isinstance(args, dict):
        raise ProtocolError(f"command.args must be an object, got {type(args).__name__}", cmd_id)
    return CommandRequest(cmd_id, name, args)


# ---------------------------------------------------------------------------------------------- building messages
def replay(from_seq: int = 0) -> dict[str, Any]:
    return {"type": "replay", "from_seq": from_seq}


def command(cmd_id: CommandId, name: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"type": "command", "id": cmd_id, "name": name, "args": args or {}}


def hello(run_id: str, name: str, status: str, step: int, total_steps: int | None, config: dict[str, Any],
          last_seq: int, pid: int) -> dict[str, Any]:
    return {"type": "hello", "protocol": PROTOCOL_VERSION, "run_id": run_id, "name": name, "status": status,
            "step": step, "total_steps": total_steps, "config": config, "last_seq": last_seq, "pid": pid}


def ack(cmd_id: CommandId, ok: bool, error: str | None, applied_at_step: int | None) -> dict[str, Any]:
    return {"type": "ack", "id": cmd_id, "ok": ok, "error": error, "applied_at_step": applied_at_step}


def error_reply(message: str, cmd_id: CommandId = None) -> dict[str, Any]:
    """An `error` answering one client's bad input (no `seq`: it is not part of the run's history)."""
    out: dict[str, Any] = {"type": "error", "message": message}
    if cmd_id is not None:
        out["id"] = cmd_id
    return out


def is_event(message: dict[str, Any]) -> bool:
    return "seq" in message
