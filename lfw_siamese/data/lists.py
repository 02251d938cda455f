"""Parsers for LFW's pair and people lists, with errors that name the file and the line."""

import dataclasses
import os
import re
from typing import Sequence

_NAME = re.compile(r'^\S+$')
NUM_FOLDS = 10
PAIR_SPLITS = ('view1_train', 'view1_test') + tuple(f'fold{k}' for k in range(NUM_FOLDS))


class LfwDataError(Exception):
  """A problem with the LFW data a user provided, told in one line (no traceback needed)."""


@dataclasses.dataclass(frozen=True)
class Pair:
  """One line of a pairs list: two images (person name, 1-based image number) and the label."""
  name1: str
  number1: int
  name2: str
  number2: int
  label: int  # 1 = same person.
  line: int  # Line in the list file, for error messages.


@dataclasses.dataclass(frozen=True)
class Person:
  """One line of a people list: a person and how many images they have."""
  name: str
  count: int
  line: int


def read_pairs(path: os.PathLike | str) -> list[list[Pair]]:
  """Reads pairsDevTrain.txt / pairsDevTest.txt (one fold) or pairs.txt (header 'FOLDS N').

  Each fold is N matched pairs ('NAME i j') followed by N mismatched ones ('NAME1 i NAME2 j').
  Raises LfwDataError naming file and line for a malformed line, a pair in the wrong part of a
  fold, or a header whose counts disagree with the body.
  """
  lines = _read_lines(path)
  if not lines:
    raise LfwDataError(f"{path}: empty file, expected a header 'N' or 'FOLDS N'")
  header_line, header = lines[0]
  fields = header.split()
  if not (1 <= len(fields) <= 2 and all(_is_count(f) for f in fields)):
    raise LfwDataError(f"{path}:{header_line}: expected a header 'N' or 'FOLDS N', got '{header}'")
  num_folds, per_fold = (1, int(fields[0])) if len(fields) == 1 else map(int, fields)
  pairs = [_parse_pair(path, number, text) for number, text in lines[1:]]
  expected = num_folds * 2 * per_fold
  if len(pairs) != expected:
    raise LfwDataError(
        f"{path}:{header_line}: header '{header}' means {expected} pairs ({num_folds} fold(s) of "
        f"{per_fold} matched + {per_fold} mismatched), but the file has {len(pairs)}")
  folds = [pairs[k * 2 * per_fold:(k + 1) * 2 * per_fold] for k in range(num_folds)]
  for k, fold in enumerate(folds):
    for i, pair in enumerate(fold):
      expected_label = 1 if i < per_fold else 0
      if pair.label != expected_label:
        what = ("a matched pair 'NAME i j'" if expected_label
                else "a mismatched pair 'NAME1 i NAME2 j'")
        raise LfwDataError(
            f"{path}:{pair.line}: expected {what} (fold {k}, pair {i + 1} of {2 * per_fold}: "
            f"{per_fold} matched come first), got '{_line_text(lines, pair.line)}'")
  return folds


def read_people(path: os.PathLike | str) -> list[list[Person]]:
  """Reads peopleDevTrain.txt / peopleDevTest.txt (header 'N') or people.txt (header 'FOLDS').

  people.txt is FOLDS, then per fold a count line followed by that many 'NAME count' lines.
  """
  lines = _read_lines(path)
  if not lines:
    raise LfwDataError(f"{path}: empty file, expected a header 'N'")
  header_line, header = lines[0]
  if not _is_count(header):
    raise LfwDataError(f"{path}:{header_line}: expected a header 'N', got '{header}'")
  has_folds = len(lines) > 1 and _is_count(lines[1][1])
  if not has_folds:
    return [_read_people_block(path, lines, 0, int(header), header_line)[0]]
  folds, position = [], 1
  for _ in range(int(header)):
    if position >= len(lines):
      raise LfwDataError(
          f"{path}:{header_line}: header '{header}' means {header} folds, but the file has "
          f"{len(folds)}")
    count_line, count_text = lines[position]
    if not _is_count(count_text):
      raise LfwDataError(f"{path}:{count_line}: expected a fold size 'N', got '{count_text}'")
    fold, position = _read_people_block(path, lines, position, int(count_text), count_line)
    folds.append(fold)
  if position != len(lines):
    raise LfwDataError(
        f"{path}:{lines[position][0]}: header '{header}' means {header} folds, but more lines "
        f"follow: '{lines[position][1]}'")
  return folds


def read_names(path: os.PathLike | str) -> list[Person]:
  """Reads lfw-names.txt: 'NAME count' on every line, no header."""
  return [_parse_person(path, number, text) for number, text in _read_lines(path)]


def _read_people_block(path, lines, header_index, count, header_line):
  """Reads count 'NAME count' lines after lines[header_index]; returns them and the next index."""
  block = []
  for position in range(header_index + 1, header_index + 1 + count):
    if position >= len(lines):
      raise LfwDataError(
          f"{path}:{header_line}: header '{lines[header_index][1]}' means {count} people, but "
          f"the file ends after {len(block)}")
    number, text = lines[position]
    if len(text.split()) != 2:
      raise LfwDataError(
          f"{path}:{number}: expected 'NAME count' ({count} people by the header at line "
          f"{header_line}), got '{text}'")
    block.append(_parse_person(path, number, text))
  end = header_index + 1 + count
  if header_index == 0 and end != len(lines):
    raise LfwDataError(
        f"{path}:{header_line}: header '{lines[0][1]}' means {count} people, but the file has "
        f"{len(lines) - 1}")
  return block, end


def _parse_pair(path, number: int, text: str) -> Pair:
  fields = text.split()
  if len(fields) == 3 and _NAME.match(fields[0]) and _is_count(fields[1]) and _is_count(fields[2]):
    return Pair(fields[0], int(fields[1]), fields[0], int(fields[2]), 1, number)
  if (len(fields) == 4 and _is_count(fields[1]) and _is_count(fields[3])
      and not _is_count(fields[0]) and not _is_count(fields[2])):
    if fields[0] == fields[2]:
      raise LfwDataError(
          f"{path}:{number}: a mismatched pair 'NAME1 i NAME2 j' names {fields[0]} twice, "
          f"got '{text}'")
    return Pair(fields[0], int(fields[1]), fields[2], int(fields[3]), 0, number)
  raise LfwDataError(f"{path}:{number}: expected 'NAME i j' or 'NAME1 i NAME2 j', got '{text}'")


def _parse_person(path, number: int, text: str) -> Person:
  fields = text.split()
  if len(fields) != 2 or _is_count(fields[0]) or not _is_count(fields[1]):
    raise LfwDataError(f"{path}:{number}: expected 'NAME count', got '{text}'")
  return Person(fields[0], int(fields[1]), number)


def _read_lines(path) -> list[tuple[int, str]]:
  """Non-blank lines with their 1-based line numbers."""
  try:
    with open(path, encoding='utf-8') as f:
      text = f.read()
  except FileNotFoundError:
    raise LfwDataError(f'{path}: file not found') from None
  except (OSError, UnicodeDecodeError) as error:
    raise LfwDataError(f'{path}: cannot read ({error})') from None
  return [(i + 1, line.strip()) for i, line in enumerate(text.splitlines()) if line.strip()]


def _line_text(lines: Sequence[tuple[int, str]], number: int) -> str:
  return next(text for n, text in lines if n == number)


def _is_count(text: str) -> bool:
  """A positive decimal integer (image numbers and counts)."""
  return text.isascii() and text.isdigit() and int(text) > 0
