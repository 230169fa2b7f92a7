"""Chat templates: the base's own, or one named in `task.chat_template`, and where the assistant's words lie
in a conversation it renders.

The spans are found from the rendered text, whatever the template (few templates carry `{% generation %}`
markers): for each assistant turn, the conversation before it is rendered with the generation prompt, and
the whole conversation must continue that text; the turn's content is then the first occurrence of its text
after that prefix, and its end-of-turn marker (what the template writes after an assistant's words, e.g.
ChatML's <|im_end|>) is learned with it, so the model learns to stop.
"""

from __future__ import annotations

from ftpipe.core.errors import ConfigError

# Templates for bases without one (task.chat_template: <name>); any other value is taken as a Jinja template.
NAMED = {
    # ChatML, as SmolLM2 and Qwen write it (without a default system prompt)
    "chatml": ("{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
               "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"),
    # Zephyr's: a role tag on its own line, each turn closed by the end-of-sequence token
    "zephyr": ("{% for message in messages %}{{ '<|' + message['role'] + '|>\\n' + message['content'] + eos_token + '\\n' }}"
               "{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}"),
}
PROBE = "\x00answer\x00"  # an assistant's words whose end the template marks


def resolve(setting: str | None, tokenizer) -> str:
    """The template to format with: task.chat_template (a name or Jinja), else the tokenizer's own."""
    if setting:
        return NAMED.get(setting, setting)
    if not getattr(tokenizer, "chat_template", None):
        raise ConfigError("task.chat_template", f"the base's tokenizer has no chat template: name one ({', '.join(NAMED)}) "
                                                "or give a Jinja template")
    return tokenizer.chat_template


def render(tokenizer, messages: list[dict], generation_prompt: bool = False) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)


def end_of_turn(tokenizer) -> str:
    """What the template writes right after an assistant's words, stripped ("" if nothing)."""
    text = render(tokenizer, [{"role": "user", "content": "hi"}, {"role": "assistant", "content": PROBE}])
    after = text[text.index(PROBE) + len(PROBE):].strip()
    return after.split()[0] if after else ""


def assistant_spans(tokenizer, messages: list[dict], which: list[int], marker: str) -> tuple[str, list[tuple[int, int]]]:
    """(the rendered conversation, the character span of each assistant turn in `which`: its content and end marker)."""
    text = render(tokenizer, messages)
    spans = []
    for i in which:
        prefix = render(tokenizer, messages[:i], generation_prompt=True)
        start = text.find(messages[i]["content"], len(prefix)) if text.startswith(prefix) else -1
        if start < 0:
            raise ConfigError("task.chat_template", "the template does not render a conversation as a continuation of its "
                                                    "first turns: ftpipe cannot tell which tokens are the assistant's")
        end = start + len(messages[i]["content"])
        rest = text[end:]
        if marker and rest.lstrip().startswith(marker):
            end += len(rest) - len(rest.lstrip()) + len(marker)
        spans.append((start, end))
    return text, spans


def labelled(offsets: list[tuple[int, int]], spans: list[tuple[int, int]]) -> list[bool]:
    """For each token (its character offsets), whether it overlaps an assistant span."""
    out, k = [], 0
    for start, end in offsets:
        while k < len(spans) and spans[k][1] <= start:
            k += 1
        out.append(k < len(spans) and start < spans[k][1] and end > spans[k][0] and end > start)
    return out
