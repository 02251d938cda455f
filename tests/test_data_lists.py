"""Parsing LFW's pair and people lists, and the one-line errors for malformed ones."""

import pytest

import fake_lfw as fake_lfw_lib
from lfw_siamese.data import lists
from lfw_siamese.data.lists import LfwDataError


def test_reads_the_fake_pair_lists(fake_lfw):
  written = fake_lfw_lib.plan_people(30)
  (dev_train,) = lists.read_pairs(fake_lfw / 'pairsDevTrain.txt')
  folds = lists.read_pairs(fake_lfw / 'pairs.txt')
  assert len(dev_train) == 40 and [p.label for p in dev_train] == [1] * 20 + [0] * 20
  assert len(folds) == 10 and all(len(fold) == 10 for fold in folds)
  first = dev_train[0]
  assert first.line == 2 and first.name1 == first.name2
  assert first.name1 in written.dev_train_people
  for k, fold in enumerate(folds):
    assert {p.name1 for p in fold} | {p.name2 for p in fold} <= set(written.fold_people[k])


def test_reads_people_lists_with_and_without_folds(fake_lfw):
  written = fake_lfw_lib.plan_people(30)
  (dev_test,) = lists.read_people(fake_lfw / 'peopleDevTest.txt')
  folds = lists.read_people(fake_lfw / 'people.txt')
  assert [p.name for p in dev_test] == list(written.dev_test_people)
  assert [[p.name for p in fold] for fold in folds] == [list(f) for f in written.fold_people]
  assert all(p.count == written.counts[p.name] for fold in folds for p in fold)
  names = lists.read_names(fake_lfw / 'lfw-names.txt')
  assert {p.name: p.count for p in names} == dict(written.counts)


def test_parses_tabs_spaces_and_blank_lines(tmp_path):
  path = tmp_path / 'pairsDevTrain.txt'
  path.write_text('1\n\nAnn_Lee  1 2\r\nAnn_Lee\t1\tBo_Ma\t3\n\n')
  (pairs,) = lists.read_pairs(path)
  assert pairs == [lists.Pair('Ann_Lee', 1, 'Ann_Lee', 2, 1, 3),
                   lists.Pair('Ann_Lee', 1, 'Bo_Ma', 3, 0, 4)]


@pytest.mark.parametrize('bad_line', ['Ann_Lee 1', 'Ann_Lee one 2', 'Ann_Lee 1 2 3 4 5',
                                      'Ann_Lee 0 2', 'Ann_Lee 1 -2', '7 1 Bo_Ma 2'])
def test_malformed_pair_line_names_file_and_line(tmp_path, bad_line):
  path = tmp_path / 'pairsDevTrain.txt'
  path.write_text(f'2\nAnn_Lee 1 2\n{bad_line}\nAnn_Lee 1 Bo_Ma 1\nAnn_Lee 2 Bo_Ma 1\n')
  with pytest.raises(LfwDataError) as error:
    lists.read_pairs(path)
  assert str(error.value) == (
      f"{path}:3: expected 'NAME i j' or 'NAME1 i NAME2 j', got '{bad_line}'")


def test_header_that_disagrees_with_the_body(tmp_path):
  path = tmp_path / 'pairs.txt'
  path.write_text('2 1\nAnn_Lee 1 2\nAnn_Lee 1 Bo_Ma 1\nBo_Ma 1 2\n')
  with pytest.raises(LfwDataError, match=r"pairs.txt:1: header '2 1' means 4 pairs .* has 3"):
    lists.read_pairs(path)
  path.write_text('1 1 1\nAnn_Lee 1 2\n')
  with pytest.raises(LfwDataError, match=r"pairs.txt:1: expected a header 'N' or 'FOLDS N'"):
    lists.read_pairs(path)


def test_pair_in_the_wrong_part_of_a_fold(tmp_path):
  path = tmp_path / 'pairsDevTest.txt'
  path.write_text('2\nAnn_Lee 1 2\nAnn_Lee 1 Bo_Ma 1\nAnn_Lee 2 Bo_Ma 1\nBo_Ma 1 2\n')
  with pytest.raises(LfwDataError, match=r"pairsDevTest.txt:3: expected a matched pair"):
    lists.read_pairs(path)


def test_mismatched_pair_of_one_person_is_rejected(tmp_path):
  path = tmp_path / 'pairsDevTest.txt'
  path.write_text('1\nAnn_Lee 1 2\nAnn_Lee 1 Ann_Lee 3\n')
  with pytest.raises(LfwDataError, match=r'pairsDevTest.txt:3: .* names Ann_Lee twice'):
    lists.read_pairs(path)


def test_people_list_errors(tmp_path):
  path = tmp_path / 'peopleDevTrain.txt'
  path.write_text('3\nAnn_Lee 2\nBo_Ma 1\n')
  with pytest.raises(LfwDataError, match=r"peopleDevTrain.txt:1: header '3' means 3 people"):
    lists.read_people(path)
  path.write_text('2\nAnn_Lee 2\nBo_Ma x\n')
  with pytest.raises(LfwDataError,
                     match=r"peopleDevTrain.txt:3: expected 'NAME count', got 'Bo_Ma x'"):
    lists.read_people(path)
  folds = tmp_path / 'people.txt'
  folds.write_text('2\n1\nAnn_Lee 2\n2\nBo_Ma 1\n')
  with pytest.raises(LfwDataError,
                     match=r"people.txt:4: header '2' means 2 people, but the file ends"):
    lists.read_people(folds)
  folds.write_text('2\n1\nAnn_Lee 2\nBo_Ma 1\n')
  with pytest.raises(LfwDataError, match=r"people.txt:4: expected a fold size 'N', got 'Bo_Ma 1'"):
    lists.read_people(folds)
  folds.write_text('1\n1\nAnn_Lee 2\nBo_Ma 1\n')
  with pytest.raises(LfwDataError, match=r"people.txt:4: header '1' means 1 folds, but more"):
    lists.read_people(folds)


def test_missing_file_is_one_line(tmp_path):
  with pytest.raises(LfwDataError, match=r'pairs.txt: file not found$'):
    lists.read_pairs(tmp_path / 'pairs.txt')

