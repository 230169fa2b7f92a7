"""`ftpipe-predict --chat` on a terminal: a conversation, one user turn a line, each answered by the model.

The conversation so far reaches the task in OpenAI's messages form ({"messages": [{"role", "content"}, ...]}),
which the task turns into a record of its own (`Task.chat_record`), so this loop names no task. Piped
input works the same way (a user turn a line), which is how the tests drive it. An empty line or end of
input ends the conversation; `/reset` starts a new one.
"""

from __future__ import annotations

import sys

from ftpipe.core.errors import DataError


def check_chat(args, task) -> None:
    """--chat fits tasks that converse; --system is a setting of --chat."""
    from ftpipe.tasks import TASK_TYPES, plugin_module

    if not args.chat:
        raise DataError("--system", "sets the system prompt of a conversation: give --chat too")
    if not task.converses:
        conversing = [name for name in TASK_TYPES if plugin_module(name).Task.converses]
        raise DataError("--chat", f"a {task.cfg.type} task does not converse (task types that do: {', '.join(conversing) or 'none'})")
    if args.text or args.context or args.question:
        raise DataError("--chat", "takes its turns from the terminal or stdin, or conversations from --file: not --text")


def converse(answer, task, system: str | None, lines=None, out=None) -> None:
    """Answer each line as the next user turn of one conversation; `answer` maps clean rows to output rows
    (ftpipe.tools.predict.predictor, the model loaded once)."""
    from ftpipe.tools.predict import clean

    lines, out = lines if lines is not None else sys.stdin, out or sys.stdout
    terminal = lines is sys.stdin and sys.stdin.isatty()
    messages: list[dict] = []
    while True:
        if terminal:
            print("you> ", end="", file=sys.stderr, flush=True)
        line = lines.readline()
        if not line or not line.strip():
            return
        if line.strip() == "/reset":
            messages = []
            continue
        messages.append({"role": "user", "content": line.strip()})
        row = answer(clean(task, [task.chat_record({"messages": list(messages)}, system)], f"--chat turn {len(messages) // 2 + 1}"))[0]
        if row["prediction"]:
            messages.append({"role": "assistant", "content": row["prediction"]})
        else:  # an empty reply cannot stand as a turn: the question is taken back, so the next line replaces it
            messages.pop()
        print(row["prediction"] or "(no answer)", file=out, flush=True)
