"""Reading a command line against its usage text, before docopt does.

docopt parses and the usage texts are the specification, but docopt accepts
an abbreviated option silently (`--n-job 4` for `--n-jobs 4`) and its own
errors name nothing a person can act on ("found unmatched (duplicate?)
arguments"). `read_command_line` checks the words against the same usage
text first, so a mistake is told as one line naming the option and what is
wrong; it also spreads the several values cartloader passes after one option
(`--creators A B`) into the repeated options docopt understands.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from docopt import DocoptExit, docopt

from uploader.errors import UsageError


@dataclass(frozen=True)
class OptionSpec:
    """One option line of a usage text: its spellings, its argument (if it takes one), what it is."""

    names: tuple[str, ...]
    argument: str | None
    description: str

    @property
    def name(self) -> str:
        return self.names[-1]  # the long spelling: `-h --help` is --help


@dataclass(frozen=True)
class CommandSpec:
    """What a command's usage text allows, read from the text itself so that the two cannot differ."""

    name: str
    usage: str
    options: dict[str, OptionSpec]  # every spelling -> its option
    required: tuple[str, ...]  # named outside brackets in the first usage pattern
    repeatable: frozenset[str]  # written `[--x X]...` in a usage pattern
    multi_value: frozenset[str]  # followed by several values (cartloader's nargs='+')

    @classmethod
    def from_usage(cls, name: str, usage: str, multi_value: frozenset[str] = frozenset()) -> CommandSpec:
        options: dict[str, OptionSpec] = {}
        for line in usage.splitlines():
            match = _OPTION_LINE.match(line)
            if match:
                words = match.group(1).replace(",", " ").split()
                option = OptionSpec(tuple(w for w in words if w.startswith("-")),
                                    next((w for w in words if not w.startswith("-")), None),
                                    (match.group(2) or "").strip())
                options.update(dict.fromkeys(option.names, option))
        patterns = usage[usage.index("Usage:"):].split("\n\n", 1)[0]
        first = patterns.splitlines()[1]
        required = tuple(re.findall(r"--[\w-]+", re.sub(r"\[[^]]*]|\([^)]*\)", "", first)))
        repeatable = frozenset(re.findall(r"\[(--[\w-]+)[^]]*]\.\.\.", patterns))
        return cls(name, usage, options, required, repeatable, multi_value)


_OPTION_LINE = re.compile(r"^\s+(-\S.*?)(?:\s{2,}(.*))?$")


def read_command_line(spec: CommandSpec, words: list[str], others: Sequence[CommandSpec] = ()) -> dict[str, Any]:
    """docopt's reading of `words` (the command's own words), after checking them against the usage text.

    Raises UsageError naming the first problem: an unknown option (with the closest valid
    one), a missing value, an option given twice, a stray argument, a missing required option.
    """
    words = spread_multi_values(words, spec.multi_value)
    given, stray = _options_given(spec, words, others)
    _check_counts(spec, given)
    if stray:
        raise UsageError(_stray_argument(*stray[0], spec))
    for name in spec.required:
        if name not in given:
            option = spec.options[name]
            raise UsageError(f"{name} {option.argument} is required ({_first_sentence(option)})")
    try:
        return dict(docopt(spec.usage, argv=[spec.name, *words], default_help=False))
    except DocoptExit:  # never docopt's own text: the checks above should have caught it
        raise UsageError(f"this command line does not match the usage of {spec.name}") from None


def _options_given(spec: CommandSpec, words: list[str], others: Sequence[CommandSpec]
                   ) -> tuple[dict[str, list[str]], list[tuple[str, str]]]:
    """Each option's values in `words`, and the stray words (each with the option or command just before it)."""
    given: dict[str, list[str]] = {}
    stray: list[tuple[str, str]] = []  # (the word, the option or command just before it)
    last_option = ""
    index = 0
    while index < len(words):
        word = words[index]
        index += 1
        if word == "--":
            stray.extend((rest, "--") for rest in words[index:])
            break
        if not is_option_word(word):
            stray.append((word, last_option))
            continue
        name, has_value, value = word.partition("=")
        option = spec.options.get(name)
        if option is None:
            raise UsageError(_unknown_option(name, spec, others))
        if option.argument is None:
            if has_value:
                raise UsageError(f"{name} takes no value (got '{word}')")
        elif not has_value:
            if index == len(words) or words[index] == "--" or is_option_word(words[index]):
                raise UsageError(f"{name} needs a value: {name} {option.argument} ({_first_sentence(option)})")
            value = words[index]
            index += 1
        given.setdefault(option.name, []).append(value)
        last_option = option.name
    return given, stray


def spread_multi_values(words: list[str], multi_value: frozenset[str]) -> list[str]:
    """Several values after one option, as cartloader's argparse takes them (nargs='+'), as docopt reads them.

    `--creators 'Doe, Jane' 'Roe, Rick' --files a b` becomes `--creators 'Doe, Jane'
    --creators 'Roe, Rick' --files a --files b`: docopt cannot express several values after
    one option, and without this the second creator would be dropped or become a file name.
    The values end at the next option, as in argparse.
    """
    spread: list[str] = []
    repeating = ""  # the multi-value option whose values are being read
    first_value_due = False
    for index, word in enumerate(words):
        if word == "--":
            spread.extend(words[index:])
            break
        if is_option_word(word):
            name, inline, _ = word.partition("=")
            repeating = name if name in multi_value else ""
            first_value_due = bool(repeating) and not inline
        elif repeating and not first_value_due:
            spread.append(repeating)
        else:
            first_value_due = False
        spread.append(word)
    return spread


def is_option_word(word: str) -> bool:
    return word.startswith("-") and len(word) > 1 and not _is_number(word)


def _is_number(word: str) -> bool:
    try:
        float(word)
    except ValueError:
        return False
    return True


def _check_counts(spec: CommandSpec, given: dict[str, list[str]]) -> None:
    for name, values in given.items():
        if len(values) > 1 and name not in spec.repeatable:
            shown = f" ({', '.join(values)})" if all(values) else ""
            raise UsageError(f"{name} is given {len(values)} times{shown}; give it once")


def _unknown_option(name: str, spec: CommandSpec, others: Sequence[CommandSpec]) -> str:
    elsewhere = [other.name for other in others if other is not spec and name in other.options]
    if elsewhere:
        return f"{name} is an option of {elsewhere[0]}, not of {spec.name}"
    known = sorted({option.name for option in spec.options.values()})
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    return f"unknown option {name}" + (f" (did you mean {close[0]}?)" if close else "")


def _stray_argument(word: str, after: str, spec: CommandSpec) -> str:
    option = spec.options.get(after)
    if option is None or option.argument is None:
        return f"unexpected argument '{word}': every value goes after its option (--name VALUE)"
    return (f"unexpected argument '{word}' after {after} {option.argument}: {after} takes one value;"
            " quote a value that contains spaces")


def _first_sentence(option: OptionSpec) -> str:
    return option.description.split(". ")[0].rstrip(".")


def asks_for_help(words: list[str]) -> bool:
    before_end = words[:words.index("--")] if "--" in words else words
    return "-h" in before_end or "--help" in before_end
