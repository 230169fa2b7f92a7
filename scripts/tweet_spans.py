"""Tweets -> span tagging: the words of each tweet's `selected_text` tagged B-/I-<sentiment>.

    python scripts/tweet_spans.py [--csv ../shared/data/tweet_sentiment_extraction/train.csv] [--out data/tweet_spans/train.jsonl]

Input: Kaggle's tweet-sentiment-extraction train.csv (textID, text, selected_text, sentiment).
Each tweet is split into words as ftpipe-predict splits raw text (ftpipe.tasks.token_classification
.tags.words), and a word is inside the span when its characters overlap the first occurrence of
selected_text (the annotators' spans sometimes cut a word: it is then counted in). Rows with an
empty text, or a selected_text that does not occur in the text, are skipped and counted.
The output is the experiment's data file (conf/data/tweet_spans_local.yaml): `dvc repro` fingerprints it.
"""

import argparse
import csv
import json
from pathlib import Path

from ftpipe.tasks.token_classification.tags import words


def tag_tweet(text: str, span: str, sentiment: str) -> tuple[list[str], list[str]] | None:
    start = text.find(span) if span.strip() else -1
    if start < 0:
        return None
    end = start + len(span.rstrip())
    tokens, starts = words(text)
    inside = [s < end and s + len(t) > start for t, s in zip(tokens, starts)]
    tags = [("I-" if i and inside[i - 1] else "B-") + sentiment if hit else "O" for i, hit in enumerate(inside)]
    return tokens, tags


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--csv", type=Path, default=Path("../shared/data/tweet_sentiment_extraction/train.csv"))
    parser.add_argument("--out", type=Path, default=Path("data/tweet_spans/train.jsonl"))
    args = parser.parse_args()
    kept = skipped = 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + ".tmp")
    with open(args.csv, newline="", encoding="utf-8") as src, open(tmp, "w", encoding="utf-8") as out:
        for row in csv.DictReader(src):
            tagged = tag_tweet(row["text"] or "", row["selected_text"] or "", row["sentiment"])
            if tagged is None or not tagged[0]:
                skipped += 1
                continue
            out.write(json.dumps({"textID": row["textID"], "tokens": tagged[0], "tags": tagged[1]}, ensure_ascii=False) + "\n")
            kept += 1
    tmp.replace(args.out)  # whole or not at all: dvc repro never fingerprints half a file
    print(f"{kept} tweets in {args.out}, {skipped} skipped (empty, or the span is not in the text)")


if __name__ == "__main__":
    main()
