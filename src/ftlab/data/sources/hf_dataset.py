"""Any Hugging Face dataset as a source: a hub name (online), or local files through one
of ``datasets``' builders (csv, json/jsonl, parquet, arrow, imagefolder).

``datasets`` does the reading (parsing, folder scanning, caching as arrow); this source
picks the columns, maps labels to class indices (a ``ClassLabel``'s names, else the
training labels sorted), finds or carves the splits, and says in one sentence what is
wrong: a missing column, an unknown split, an empty file, a label only the test split has.

For the generative tasks it yields :class:`~ftlab.data.sources.base.Record` dicts instead:
prompt/response pairs, whole chats, or multiple-choice questions.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ftlab.data.sources.base import (
    ANSWER_KINDS,
    EXAMPLE_CLASS,
    FIXED_TEST_FRACTION,
    Record,
    Source,
    Split,
    check_test_fraction,
    fixed_test_split,
    label_ids,
    label_order,
    number_answer,
)
from ftlab.errors import ConfigError, DataError, one_line, suggest
from ftlab.plain import plain

#: ``datasets``' packaged builders for local files (``path`` takes one, or a hub name)
BUILDERS = ("csv", "json", "parquet", "arrow", "imagefolder", "text")
#: column names taken when the config names none, in order
TEXT_GUESSES = ("text", "sentence", "content", "review", "document")
#: what a multiple-choice record's options are called, by position
OPTION_LETTERS = tuple("ABCDEFGHIJKLMNOPQRSTUVWXYZ")


class HFDataset(Source):
    """A Hugging Face dataset, by hub name or from local files.

    ``path``: a hub name, or a builder (``csv``, ``json``, ``parquet``, ``arrow``,
    ``imagefolder``) reading ``data_files`` (a file, a list, or ``{split: files}``) or
    ``files_dir`` (a folder). Columns: ``text_column`` (+ ``text_pair_column`` for sentence
    pairs) or ``image_column``, and ``label_column``; left unset, an image feature or a
    column named like text is taken. Splits: ``train_split``; ``val_split`` (optional: else
    the data module carves validation from train); ``test_split`` (``auto``: ``test`` when
    the dataset has it, else a fixed stratified ``test_fraction`` of train).

    Generative tasks read records (:class:`~ftlab.data.sources.base.Record`) instead:
    ``prompt_column`` + ``response_column`` (prompt/response pairs; ``answer_column``, when
    set, holds the gold answer, else the response is the answer), or ``messages_column`` (a
    chat: a list of ``{role, content}``; records ``{"messages"}``, plus ``answer`` from
    ``answer_column``), or multiple choice: ``prompt_column`` + ``options_column`` (a list of
    texts per row) + ``label_column`` (the gold option's index from 0, or its text). A choice
    record's response is ``response_column``'s value, else the gold option's text, and so is
    its answer unless ``answer_column`` is set; its classes are the option letters.
    ``answer_kind`` says how answers are checked (number, letter, text; null: not checked,
    except multiple choice, which compares the option's text).
    """

    name = "hf_dataset"

    def __init__(
        self,
        path: str | None = None,
        config_name: str | None = None,
        data_files: str | Sequence[str] | Mapping[str, Any] | None = None,
        files_dir: str | os.PathLike | None = None,
        text_column: str | None = None,
        text_pair_column: str | None = None,
        image_column: str | None = None,
        label_column: str = "label",
        prompt_column: str | None = None,
        response_column: str | None = None,
        answer_column: str | None = None,
        messages_column: str | None = None,
        options_column: str | None = None,
        answer_kind: str | None = None,
        train_split: str = "train",
        val_split: str | None = None,
        test_split: str | None = "auto",
        test_fraction: float = FIXED_TEST_FRACTION,
        cache_dir: str | os.PathLike | None = None,
        data_dir: str | os.PathLike | None = None,
    ) -> None:
        super().__init__(data_dir)
        if not path:
            raise ConfigError(
                "data=hf_dataset needs data.source.path: a Hugging Face hub name, or one of "
                f"{', '.join(BUILDERS)} with data.source.data_files (or files_dir) for local "
                "files."
            )
        if text_column and image_column:
            raise ConfigError(
                f"data.source.text_column={text_column!r} and image_column={image_column!r}: "
                "a classification source reads one of them; set the other to null."
            )
        if text_pair_column and image_column:
            raise ConfigError("data.source.text_pair_column needs a text_column, not images.")
        _check_record_columns(
            prompt_column,
            response_column,
            answer_column,
            messages_column,
            options_column,
            text_column or text_pair_column or image_column,
            answer_kind,
        )
        test_fraction = check_test_fraction(test_fraction, "data.source.test_fraction")
        if data_files is None and files_dir is None and path in BUILDERS:
            raise ConfigError(
                f"data.source.path={path} reads local files: set data.source.data_files (a file, "
                "a list, or {train: ..., test: ...}) or data.source.files_dir (a folder)."
            )
        self.path = str(path)
        self.config_name = config_name
        self.data_files = plain(data_files)
        self.files_dir = str(Path(files_dir).expanduser()) if files_dir else None
        self.text_column = text_column
        self.text_pair_column = text_pair_column
        self.image_column = image_column
        self.label_column = label_column
        self.prompt_column, self.response_column = prompt_column, response_column
        self.answer_column, self.messages_column = answer_column, messages_column
        self.options_column = options_column
        self._answer_kind = answer_kind
        self.train_split, self.val_split, self.test_split = train_split, val_split, test_split
        self.test_fraction = float(test_fraction)
        self.cache_dir = str(cache_dir) if cache_dir else str(self.data_dir / "hf_datasets")
        self._dataset = None

    # -- reading -----------------------------------------------------------------------------
    def dataset(self):
        """The ``DatasetDict``, read (and cached as arrow by ``datasets``) once."""
        if self._dataset is None:
            self._dataset = self._read()
        return self._dataset

    def _read(self):
        try:
            import datasets
        except ImportError as err:  # pragma: no cover - a dependency of ftlab
            raise ConfigError("data=hf_dataset needs the `datasets` package.") from err
        _check_files(self.data_files)
        datasets.disable_progress_bars()
        try:
            loaded = datasets.load_dataset(
                self.path,
                self.config_name,
                data_files=self.data_files,
                data_dir=self.files_dir,
                cache_dir=self.cache_dir,
            )
        except FileNotFoundError as err:
            raise DataError(
                f"data.source.path={self.path!r}: {one_line(err, 300)} (offline, a hub name works "
                "only once cached; local files: path=csv|json|parquet|arrow|imagefolder with "
                "data_files)."
            ) from err
        except (ValueError, TypeError, OSError) as err:
            raise DataError(
                f"data.source.path={self.path!r} could not be read: {one_line(err, 300)}"
            ) from err
        except Exception as err:  # pyarrow and datasets' own errors: an unreadable file
            if type(err).__module__.startswith(("pyarrow", "datasets")):
                raise DataError(
                    f"data.source.path={self.path!r} ({self.data_files or self.files_dir}) could "
                    f"not be read: {type(err).__name__}: {one_line(err, 300)}"
                ) from err
            raise
        if not isinstance(loaded, datasets.DatasetDict):  # pragma: no cover - split=None
            loaded = datasets.DatasetDict({"train": loaded})
        return loaded

    def _split_named(self, key: str, name: str):
        splits = list(self.dataset())
        if name not in splits:
            raise DataError(
                f"data.source.{key}={name!r} is not a split of {self.path}; its splits: "
                f"{', '.join(splits)}.{suggest(name, splits)}"
            )
        return self.dataset()[name]

    @property
    def modality(self) -> str:  # type: ignore[override]
        if self.generative:
            return "text"
        return "image" if self._image_column() else "text"

    @property
    def generative(self) -> bool:
        """Whether it yields records (a prompt or a chat column is set)."""
        return bool(self.prompt_column or self.messages_column)

    @property
    def fields(self) -> tuple[str, ...]:  # type: ignore[override]
        if self.messages_column:
            return ("messages", "answer") if self.answer_column else ("messages",)
        if self.options_column:
            return ("prompt", "response", "answer", "options")
        return ("prompt", "response", "answer") if self.prompt_column else ()

    @property
    def answer_kind(self) -> str | None:  # type: ignore[override]
        if self._answer_kind is None and self.options_column and not self.answer_column:
            return "text"  # the gold option's text
        return self._answer_kind

    def _columns(self) -> list[str]:
        return list(self._split_named("train_split", self.train_split).column_names)

    def _image_column(self) -> str | None:
        if self.image_column:
            return self.image_column
        if self.text_column:
            return None
        import datasets

        features = self._split_named("train_split", self.train_split).features
        found = [c for c, f in features.items() if isinstance(f, datasets.Image)]
        return found[0] if found else None

    def _text_column(self) -> str:
        if self.text_column:
            return self.text_column
        columns = self._columns()
        found = next((c for c in TEXT_GUESSES if c in columns), None)
        if found is None:
            raise DataError(
                f"{self.path} has no image feature and no column named like text "
                f"({', '.join(TEXT_GUESSES)}); set data.source.text_column or image_column "
                f"to one of its columns: {', '.join(columns)}."
            )
        return found

    def _check_column(self, part, role: str, column: str, split: str) -> None:
        present = list(part.column_names)
        if column not in present:
            raise DataError(
                f"the {split} split of {self.path} has no column {column!r} "
                f"(data.source.{role}); its columns: {', '.join(present)}."
                f"{suggest(column, present)}"
            )

    # -- labels ------------------------------------------------------------------------------
    def _label_feature(self):
        import datasets

        train = self._split_named("train_split", self.train_split)
        self._check_column(train, "label_column", self.label_column, self.train_split)
        feature = train.features[self.label_column]
        return feature if isinstance(feature, datasets.ClassLabel) else None

    def _class_names(self) -> list[str]:
        if self.options_column:
            return self._option_letters()
        if self.generative:
            return list(EXAMPLE_CLASS)
        feature = self._label_feature()
        if feature is not None:
            return list(feature.names)
        train = self._split_named("train_split", self.train_split)
        values = {str(v).strip() for v in train[self.label_column] if v is not None}
        return label_order(values)

    def _labels(self, part, split: str) -> np.ndarray:
        self._check_column(part, "label_column", self.label_column, split)
        raw = part[self.label_column]
        names = self.class_names
        if self._label_feature() is not None:
            labels = np.asarray(raw, dtype=np.int64)
            bad = sorted({int(v) for v in labels if not 0 <= v < len(names)})
            if bad:
                raise DataError(
                    f"the {split} split of {self.path} has label id(s) {bad[:5]} outside its "
                    f"ClassLabel ({len(names)} classes: {', '.join(names[:10])}); -1 marks a "
                    "missing label: drop those rows or pick another split."
                )
            return labels
        text = ["" if v is None else str(v).strip() for v in raw]
        where = f"the {split} split of {self.path}"
        return label_ids(text, names, where, f"the {self.train_split} split")

    # -- items -------------------------------------------------------------------------------
    def _items(self, part, split: str) -> list[Any]:
        image = self._image_column()
        if image:
            return self._images(part, image, split)
        column = self._text_column()
        self._check_column(part, "text_column", column, split)
        texts = _texts(part[column], column, split, self.path)
        if not self.text_pair_column:
            return texts
        self._check_column(part, "text_pair_column", self.text_pair_column, split)
        pairs = _texts(part[self.text_pair_column], self.text_pair_column, split, self.path)
        return list(zip(texts, pairs, strict=True))

    def _images(self, part, column: str, split: str) -> list[Any]:
        import datasets

        self._check_column(part, "image_column", column, split)
        if not isinstance(part.features[column], datasets.Image):
            raise DataError(
                f"column {column!r} of {self.path} is {part.features[column]}, not images; "
                "set data.source.image_column to an Image column or use text_column."
            )
        items: list[Any] = []
        # paths and embedded encoded bytes alike are decoded by the pipeline, in the workers
        for value in part.cast_column(column, datasets.Image(decode=False))[column]:
            if value.get("path") and Path(value["path"]).is_file():
                items.append(value["path"])
            elif value.get("bytes"):
                items.append(bytes(value["bytes"]))
            else:
                raise DataError(f"an image in column {column!r} of {self.path} has no data.")
        return items

    # -- records (generative tasks) ------------------------------------------------------------
    def _option_letters(self) -> list[str]:
        """A letter per option position, as many as the longest options list has."""
        most = 0
        for key, name in self._named_splits():
            part = self._split_named(key, name)
            self._check_column(part, "options_column", self.options_column, name)
            most = max([most, *(len(v) for v in part[self.options_column] if isinstance(v, list))])
        if most > len(OPTION_LETTERS):
            raise DataError(
                f"{self.path} has a row with {most} options; multiple choice takes at most "
                f"{len(OPTION_LETTERS)} (A-Z)."
            )
        return list(OPTION_LETTERS[: max(most, 2)])

    def _records(self, part, split: str) -> tuple[list[Record], list[int]]:
        """The records of one split and their labels (the gold option's index, else 0)."""
        where = f"the {split} split of {self.path}"
        answers = self._answers(part, split) if self.answer_column else None
        if self.messages_column:
            self._check_column(part, "messages_column", self.messages_column, split)
            items = []
            for row, chat in enumerate(part[self.messages_column]):
                item = Record(messages=_chat(chat, row, where, self.messages_column))
                if answers is not None:
                    item["answer"] = answers[row]
                items.append(item)
            return items, [0] * len(items)
        assert self.prompt_column is not None
        self._check_column(part, "prompt_column", self.prompt_column, split)
        prompts = _texts(part[self.prompt_column], self.prompt_column, split, self.path)
        responses = None
        if self.response_column:
            self._check_column(part, "response_column", self.response_column, split)
            responses = _texts(part[self.response_column], self.response_column, split, self.path)
        if not self.options_column:
            assert responses is not None
            answers = answers or responses
            return [
                Record(prompt=p, response=r, answer=a)
                for p, r, a in zip(prompts, responses, answers, strict=True)
            ], [0] * len(prompts)
        self._check_column(part, "options_column", self.options_column, split)
        self._check_column(part, "label_column", self.label_column, split)
        items, labels = [], []
        for row, (prompt, options, label) in enumerate(
            zip(prompts, part[self.options_column], part[self.label_column], strict=True)
        ):
            options = _options(options, row, where, self.options_column)
            gold = _gold(label, options, row, where, self.label_column)
            response = responses[row] if responses else options[gold]
            answer = answers[row] if answers else options[gold]
            items.append(Record(prompt=prompt, response=response, answer=answer, options=options))
            labels.append(gold)
        return items, labels

    def _answers(self, part, split: str) -> list[str]:
        assert self.answer_column is not None
        self._check_column(part, "answer_column", self.answer_column, split)
        answers = _texts(part[self.answer_column], self.answer_column, split, self.path)
        if self.answer_kind != "number":
            return [a.strip() for a in answers]
        numbers = []
        for row, answer in enumerate(answers):
            try:
                numbers.append(number_answer(answer))
            except (ValueError, ZeroDivisionError) as e:
                raise DataError(
                    f"row {row} of the {split} split of {self.path} has {self.answer_column}="
                    f"{answer!r}, which is not a number (data.source.answer_kind=number)."
                ) from e
        return numbers

    # -- splits ------------------------------------------------------------------------------
    def _named_splits(self) -> list[tuple[str, str]]:
        """(config key, split name) of every split the config names, ``auto`` resolved."""
        named = [("train_split", self.train_split)]
        if self.val_split is not None:
            named.append(("val_split", self.val_split))
        if self.test_split == "auto":
            if "test" in self.dataset():
                named.append(("test_split", "test"))
        elif self.test_split is not None:
            named.append(("test_split", self.test_split))
        return named

    def _load(self) -> dict[str, Split | None]:
        splits: dict[str, Split | None] = {"train": None, "val": None, "test": None}
        for role, key, name in (
            ("train", "train_split", self.train_split),
            ("val", "val_split", self.val_split),
            ("test", "test_split", self.test_split),
        ):
            if name is None or (role == "test" and name == "auto"):
                if role == "test" and name == "auto" and "test" in self.dataset():
                    name = "test"
                else:
                    continue
            part = self._split_named(key, name)
            if len(part) == 0:
                raise DataError(f"the {name} split of {self.path} has no rows.")
            if self.generative:
                splits[role] = Split(*self._records(part, name))
            else:
                splits[role] = Split(self._items(part, name), self._labels(part, name))
        if splits["test"] is None:  # a fixed carve: the same test examples for every seed
            train = splits["train"]
            assert train is not None
            splits.update(fixed_test_split(train, self.test_fraction))
        return splits

    def __repr__(self) -> str:
        return f"HFDataset(path={self.path!r}, data_files={self.data_files!r})"


def _texts(values: Sequence[Any], column: str, split: str, path: str) -> list[str]:
    texts = ["" if v is None else str(v) for v in values]
    empty = [i for i, t in enumerate(texts) if not t.strip()]
    if empty:
        raise DataError(
            f"the {split} split of {path} has {len(empty)} row(s) with an empty {column!r} "
            f"(row(s) {', '.join(str(i) for i in empty[:10])}); fill or drop them."
        )
    return texts


def _check_record_columns(
    prompt: str | None,
    response: str | None,
    answer: str | None,
    messages: str | None,
    options: str | None,
    classifying: str | None,
    answer_kind: str | None,
) -> None:
    """The record columns set make one kind of record; a ConfigError says what is missing."""
    if not (prompt or response or answer or messages or options):
        if answer_kind is not None:
            raise ConfigError(
                f"data.source.answer_kind={answer_kind!r} is for records: set prompt_column "
                "(with response_column or options_column) or messages_column."
            )
        return
    if answer_kind is not None and answer_kind not in ANSWER_KINDS:
        raise ConfigError(
            f"data.source.answer_kind={answer_kind!r} must be one of {', '.join(ANSWER_KINDS)} "
            "or null (free text, not checked)."
        )
    if classifying:
        raise ConfigError(
            f"data.source.text_column/image_column ({classifying!r}) is for classification and "
            "prompt_column/messages_column for records of a generative task: set the others "
            "to null."
        )
    if messages and (prompt or response or options):
        raise ConfigError(
            f"data.source.messages_column={messages!r} is a whole chat: set prompt_column, "
            "response_column and options_column to null (answer_column may stay)."
        )
    if not messages and not prompt:
        raise ConfigError(
            "data.source.response_column, answer_column and options_column need "
            "data.source.prompt_column (the text the model is conditioned on)."
        )
    if prompt and not (response or options):
        raise ConfigError(
            f"data.source.prompt_column={prompt!r} needs data.source.response_column "
            "(prompt/response pairs) or options_column (multiple choice)."
        )


def _chat(value: Any, row: int, where: str, column: str) -> list[dict[str, str]]:
    """A chat as a list of ``{role, content}`` dicts; a DataError names a malformed row."""
    if (
        isinstance(value, list)
        and value
        and all(
            isinstance(m, Mapping)
            and isinstance(m.get("role"), str)
            and isinstance(m.get("content"), str)
            for m in value
        )
    ):
        return [{"role": m["role"], "content": m["content"]} for m in value]
    raise DataError(
        f"row {row} of {where} has {column}={one_line(value, 120)!r}; a chat is a non-empty "
        "list of {role, content} messages."
    )


def _options(value: Any, row: int, where: str, column: str) -> list[str]:
    """A row's options: at least two non-empty texts."""
    if (
        isinstance(value, list)
        and len(value) >= 2
        and all(isinstance(o, str) and o.strip() for o in value)
    ):
        return [o.strip() for o in value]
    raise DataError(
        f"row {row} of {where} has {column}={one_line(value, 120)!r}; multiple choice needs a "
        "list of at least two non-empty option texts."
    )


def _gold(label: Any, options: list[str], row: int, where: str, column: str) -> int:
    """The gold option's index, given as one (from 0) or as the option's text."""
    if isinstance(label, int) and not isinstance(label, bool) and 0 <= label < len(options):
        return label
    if isinstance(label, str) and label.strip() in options:
        return options.index(label.strip())
    raise DataError(
        f"row {row} of {where} has {column}={label!r}, which is not among its options "
        f"{options}: give the gold option's index (0 to {len(options) - 1}) or its text."
    )


def _check_files(data_files: Any) -> None:
    """Every local file named exists and is not empty (``datasets`` would say less)."""
    if data_files is None:
        return
    if isinstance(data_files, Mapping):
        names = [f for v in data_files.values() for f in ([v] if isinstance(v, str) else v)]
    else:
        names = [data_files] if isinstance(data_files, str) else list(data_files)
    for name in names:
        if "://" in str(name) or any(ch in str(name) for ch in "*?["):
            continue  # a URL or a glob: datasets resolves those
        path = Path(name).expanduser()
        if not path.exists():
            raise DataError(f"data.source.data_files names {path}, which does not exist.")
        if path.is_file() and path.stat().st_size == 0:
            raise DataError(f"data.source.data_files names {path}, which is empty.")
