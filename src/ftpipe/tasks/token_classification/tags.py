"""Tag schemes in, IOB2 out; words of raw text; entities back to character offsets."""

from __future__ import annotations

import re

from ftpipe.tasks.base import RecordError

SCHEMES = ("iob2", "iob1", "bioes")
# Words (a combining mark belongs to its letter: decomposed `Jose\u0301` is one word), and runs of punctuation:
# how raw text is split.
_MARKS = "\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f"  # Unicode's combining-mark blocks
_LETTERS = rf"(?:\w|[{_MARKS}])+"
WORD = re.compile(rf"{_LETTERS}(?:['’]{_LETTERS})*|[^\w\s{_MARKS}]+")


def tag_names(types: list[str]) -> list[str]:
    """Tag ids in order: O, then B- and I- per entity type (CoNLL-2003's order when types are PER, ORG, LOC, MISC)."""
    return ["O"] + [f"{prefix}-{name}" for name in types for prefix in "BI"]


def words(text: str) -> tuple[list[str], list[int]]:
    """The words of raw text and where each starts."""
    found = list(WORD.finditer(text))
    return [m.group() for m in found], [m.start() for m in found]


def _tag_name(tag, names: list[str], where, field: str) -> str:
    """A tag as its name: an id (a number, or ASCII digits) is looked up in `names`; `where()` names the token."""
    if tag is None:
        raise RecordError(field, f"{where()}: no tag (a CoNLL line needs a label column after the token)")
    if isinstance(tag, bool):
        raise RecordError(field, f"{where()}: invalid tag {tag!r}")
    # Only ASCII digits are an id: str.isdigit() is true of '²' and '١' too (int('١') == 1).
    if isinstance(tag, (int, float)) or (isinstance(tag, str) and tag.strip().isascii() and tag.strip().isdigit()):
        number = float(tag)
        if not number.is_integer() or not 0 <= number < len(names):
            raise RecordError(field, f"{where()}: tag id {tag!r} out of range 0..{len(names) - 1}")
        tag = names[int(number)]
    return str(tag).strip()


def to_iob2(raw: list, ids: dict[str, int], scheme: str, repair: bool, stats, where, field: str) -> list[int]:
    """Tag ids (IOB2) from names or ids in `scheme`. `where(i)` names token i in an error about `field`.

    IOB1 and BIOES convert without loss. In IOB2 an I- tag that does not continue an entity of its
    type is broken: refused, or with `repair` made the B- it must have meant (counted in `stats`).
    In BIOES an I- or E- that continues no B- of its type, and a B- or I- never closed by an E-, are
    broken the same way: refused, or with `repair` read as IOB2 reads them, and counted.
    """
    names = list(ids)
    out, previous, open_kind = [], "O", None  # open_kind: BIOES, the type of an entity still waiting for its E-

    def broken(i: int, problem: str) -> None:
        if not repair:
            raise RecordError(field, f"{where(i)}: {problem} (BIOES; task.repair_tags=true repairs it)")
        stats["tags_repaired"] += 1

    for i, tag in enumerate(raw):
        tag = _tag_name(tag, names, lambda: where(i), field)
        prefix, _, kind = tag.partition("-")
        prefix = prefix.upper()
        if scheme == "bioes":
            if prefix in ("B", "S", "O") and open_kind:
                broken(i - 1, f"the {open_kind} entity it ends has no E-")
            elif prefix in ("I", "E") and open_kind != kind:
                broken(i, f"{tag} continues no B-{kind}")
            open_kind = kind if prefix in ("B", "I") else None
        if prefix == "O" and not kind:
            tag = "O"
        elif scheme == "bioes" and prefix in ("S", "E"):
            tag = f"{'B' if prefix == 'S' else 'I'}-{kind}"
        elif prefix in ("B", "I") and kind:
            tag = f"{prefix}-{kind}"
        else:
            raise RecordError(field, f"{where(i)}: tag {tag!r} is not O or B-/I-<type> ({scheme.upper()})")
        if tag not in ids:
            raise RecordError(field, f"{where(i)}: entity type {kind!r} of tag {tag!r} is not in task.labels "
                                      f"({', '.join(sorted({n[2:] for n in names[1:]}))})")
        if tag.startswith("I-") and previous[2:] != kind:  # an I- that starts an entity
            if scheme == "iob2" and not repair:
                raise RecordError(field, f"{where(i)}: {tag} follows {previous}, so no entity starts with B-"
                                          f" (IOB2; task.scheme=iob1 reads it as a start, task.repair_tags=true repairs it)")
            stats["tags_repaired"] += scheme == "iob2"
            tag = "B-" + kind
        out.append(ids[tag])
        previous = tag
    if scheme == "bioes" and open_kind:
        broken(len(out) - 1, f"the {open_kind} entity it ends has no E-")
    return out


def entity_spans(tags: list[str], spans: list[tuple[int, int]], text: str, scores: list[float] | None = None,
                 strict: bool = False) -> list[dict]:
    """Entities of one sentence's word tags, with character offsets into `text` (`spans`: each word's)."""
    from ftpipe.tasks.token_classification.entities import entities

    out = []
    for kind, first, end in entities(tags, strict):
        start, stop = spans[first][0], spans[end - 1][1]
        entity = {"type": kind, "text": text[start:stop], "start": start, "end": stop}
        if scores is not None:
            entity["score"] = round(sum(scores[first:end]) / (end - first), 6)
        out.append(entity)
    return out


def describe(entities: list[dict]) -> str:
    """One line: `TYPE "text" [start:end]; ...`, or (none)."""
    return "; ".join(f'{e["type"]} "{e["text"]}" [{e["start"]}:{e["end"]}]' for e in entities) or "(none)"
