"""The Grid's key rule: which keys of an image bucket are originals, and the rest by kind."""

import itertools

import pytest

from grid_reingest.domain.grid_keys import (
    HEX,
    InvalidKeyRuleInput,
    KeyRange,
    KeyRule,
    Skip,
    Tally,
    check_hex_prefix,
    original_ids,
    prefix_path,
)

ID = "abcdef0123456789abcdef0123456789abcdef01"
KEY = "a/b/c/d/e/f/" + ID


def test_grid_keys_key_of_is_the_grids_file_key_from_id():
    # fileKeyFromId: id.take(6).mkString("/") + "/" + id
    assert KeyRule().key_of(ID) == KEY
    assert KeyRule("guardian").key_of(ID) == "guardian/" + KEY


def test_grid_keys_an_original_gives_its_id():
    assert KeyRule().classify(KEY) == ID
    assert KeyRule("guardian").classify("guardian/" + KEY) == ID


@pytest.mark.parametrize(
    ("key", "kind"),
    [
        ("optimised/" + KEY, Skip.OTHER_FOLDER),
        ("thumbs/" + KEY, Skip.OTHER_FOLDER),
        ("thumbs/foo.jpg", Skip.OTHER_FOLDER),
        ("A/B/C/D/E/F/" + ID.upper(), Skip.OTHER_FOLDER),
        ("guardian/" + KEY, Skip.INSTANCE_PREFIX),
        ("0/0/0/0/0/0/" + ID, Skip.FOLDERS_MISMATCH),
        ("a/b/c/d/e/0/" + ID, Skip.FOLDERS_MISMATCH),
        ("a/b/c/d/e/f/" + ID.upper(), Skip.NOT_GRID_ID),
        ("a/b/c/d/e/f/" + ID + ".jpg", Skip.NOT_GRID_ID),
        ("a/b/c/d/e/f/" + ID[:-1], Skip.NOT_GRID_ID),
        ("a/b/c/d/e/f/", Skip.NOT_GRID_ID),
        ("a/b/c/" + ID, Skip.NOT_LAYOUT),
        ("a/b/c/d/e/f/g/" + ID, Skip.NOT_LAYOUT),
        ("README", Skip.NOT_LAYOUT),
        (ID, Skip.NOT_LAYOUT),
        ("/" + KEY, Skip.OTHER_FOLDER),
        (KEY + "/", Skip.NOT_LAYOUT),
    ],
)
def test_grid_keys_every_other_key_is_left_out_by_kind(key, kind):
    assert KeyRule().classify(key) == kind


@pytest.mark.parametrize(
    ("key", "kind"),
    [
        (KEY, Skip.OTHER_INSTANCE),
        ("other/" + KEY, Skip.OTHER_INSTANCE),
        ("guardians/" + KEY, Skip.OTHER_INSTANCE),
        ("guardian/optimised/" + KEY, Skip.OTHER_FOLDER),
        ("guardian/0/0/0/0/0/0/" + ID, Skip.FOLDERS_MISMATCH),
        ("guardian/x/" + KEY, Skip.OTHER_FOLDER),
        ("guardian/a/b/c/d/e/f/nope", Skip.NOT_GRID_ID),
    ],
)
def test_grid_keys_with_an_instance_only_its_prefix_holds_originals(key, kind):
    assert KeyRule("guardian").classify(key) == kind


def test_grid_keys_an_instance_named_like_a_grid_folder_still_works():
    # Given an instance whose name is also a folder of other files at the top
    rule = KeyRule("optimised")
    # Then its originals are found, and nothing beneath it is taken for a prefix
    assert rule.classify("optimised/" + KEY) == ID
    assert KeyRule().classify("optimised/" + KEY) == Skip.OTHER_FOLDER


@pytest.mark.parametrize("name", ["", "a/b", ".", "..", "has space", "tab\t"])
def test_grid_keys_refuses_an_instance_name_that_cannot_be_a_folder(name):
    with pytest.raises(InvalidKeyRuleInput, match="instance"):
        KeyRule(name)


def test_grid_keys_original_ids_tallies_every_key_and_keeps_the_first_example():
    keys = [KEY, "optimised/" + KEY, "README", "optimised/x", "0/0/0/0/0/0/" + ID]
    tally = Tally()
    ids = list(original_ids(keys, KeyRule(), tally))
    assert ids == [ID]
    assert tally.kept == 1
    assert tally.keys == 5
    assert tally.skipped == {Skip.OTHER_FOLDER: 2, Skip.NOT_LAYOUT: 1, Skip.FOLDERS_MISMATCH: 1}
    assert tally.examples[Skip.OTHER_FOLDER] == "optimised/" + KEY
    assert tally.lines()[0].split()[0] == "2"


@pytest.mark.parametrize(
    ("hex_prefix", "path"),
    [("", ""), ("a", "a/"), ("abc", "a/b/c/"), ("abcdef", "a/b/c/d/e/f/"), ("abcdef0", KEY[:19])],
)
def test_grid_keys_prefix_path_is_where_ids_with_that_prefix_live(hex_prefix, path):
    assert prefix_path(hex_prefix) == path
    assert (KEY.startswith(path)) == ID.startswith(hex_prefix)


@pytest.mark.parametrize("text", ["", "g", "ABC", "a/b", "0" * 41, " a"])
def test_grid_keys_refuses_a_prefix_that_cannot_start_a_grid_id(text):
    with pytest.raises(InvalidKeyRuleInput, match="prefix"):
        check_hex_prefix(text)


def _keys_around(rule: KeyRule) -> list[str]:
    # Originals in every folder of the first two levels, and noise at each boundary.
    keys = []
    for a, b in itertools.product(HEX, repeat=2):
        image_id = f"{a}{b}" + "0" * 38
        keys.append(rule.key_of(image_id))
        keys += [rule.base + f"{a}/{b}.jpg", rule.base + f"{a}/{b}/", rule.base + f"{a}/x"]
    return [*keys, rule.base + "optimised/x", rule.base + "0.txt", rule.base + "~"]


@pytest.mark.parametrize("instance", [None, "guardian"])
@pytest.mark.parametrize(("hex_prefix", "levels"), [("", 2), ("", 1), ("a", 2), ("abcdef", 2)])
def test_grid_keys_ranges_cover_every_key_under_the_prefix_exactly_once(
    instance, hex_prefix, levels
):
    # Given keys of every kind around the ranges' bounds
    rule = KeyRule(instance)
    keys = [*_keys_around(rule), rule.key_of(ID), rule.base + "a/b/c/d/e/f/" + "0" * 40]
    # When split into ranges
    ranges = rule.ranges(hex_prefix, levels)
    # Then every key under the prefix is in exactly one range, and no other key in any
    under = [k for k in keys if k.startswith(rule.listing_prefix(hex_prefix))]
    assert under
    for key in keys:
        holders = [r for r in ranges if r.holds(key)]
        assert len(holders) == (1 if key in under else 0), key
    assert len([r for r in ranges if not r.sparse]) == 16**levels
    assert len(ranges) == 2 * 16**levels + 1


def test_grid_keys_ranges_stop_at_a_whole_id():
    rule = KeyRule()
    assert rule.ranges(ID, levels=2) == [KeyRange(KEY)]
    assert len(rule.ranges(ID[:-1], levels=2)) == 33
