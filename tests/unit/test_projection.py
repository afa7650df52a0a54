"""The projection's merge rules (SPEC §4), one rule per test."""

from __future__ import annotations

import copy
from dataclasses import fields

import pytest

from grid_reingest.adapters.grid import DATA_CALLS
from grid_reingest.domain.merge import ProjectionError, ServiceData, merge


def loader_image(**overrides):
    image = {
        "id": "a" * 40,
        "uploadTime": "2020-01-01T00:00:00.000Z",
        "uploadedBy": "someone@example.org",
        "lastModified": "2020-01-02T00:00:00.000Z",
        "identifiers": {"picdarUrn": "GD1"},
        "source": {"file": "http://bucket/a", "mimeType": "image/jpeg"},
        "fileMetadata": {"iptc": {"City": "London"}, "exif": {}, "exifSub": {}, "xmp": {}},
        "metadata": {
            "title": "Original title",
            "description": "Original description",
            "byline": "Jane Doe",
            "keywords": ["a", "b"],
            "domainMetadata": {"editorial": {"priority": 3}, "archive": {"box": "B1"}},
        },
        "originalMetadata": {"title": "Original title"},
        "usageRights": {"category": "agency", "supplier": "Getty Images"},
        "originalUsageRights": {"category": "agency", "supplier": "Getty Images"},
        "exports": [],
        "usages": [],
        "leases": {"leases": [], "lastModified": None},
        "collections": [],
    }
    image.update(overrides)
    return image


def edits(**overrides):
    value = {"archived": False, "labels": [], "metadata": {}}
    value.update(overrides)
    return value


def test_service_data_fields_are_the_data_calls():
    assert {f.name for f in fields(ServiceData)} == set(DATA_CALLS)


# -- metadata --------------------------------------------------------------------


def test_merge_edited_metadata_field_replaces_the_images():
    # Given edits that set the title
    data = ServiceData(edits=edits(metadata={"title": "Edited title"}))

    # When
    merged = merge(loader_image(), data)

    # Then the title is the edit's, every other field the image's
    assert merged["metadata"]["title"] == "Edited title"
    assert merged["metadata"]["description"] == "Original description"
    assert merged["metadata"]["byline"] == "Jane Doe"


def test_merge_null_edited_metadata_field_keeps_the_images():
    merged = merge(loader_image(), ServiceData(edits=edits(metadata={"description": None})))
    assert merged["metadata"]["description"] == "Original description"


def test_merge_edited_metadata_field_absent_from_the_image_is_added():
    merged = merge(loader_image(), ServiceData(edits=edits(metadata={"city": "Leeds"})))
    assert merged["metadata"]["city"] == "Leeds"


def test_merge_edited_list_replaces_the_images_list():
    merged = merge(loader_image(), ServiceData(edits=edits(metadata={"keywords": ["c"]})))
    assert merged["metadata"]["keywords"] == ["c"]


def test_merge_empty_edited_string_still_replaces():
    # Present and not null: the latest Grid does not filter empty strings out.
    merged = merge(loader_image(), ServiceData(edits=edits(metadata={"byline": ""})))
    assert merged["metadata"]["byline"] == ""


def test_merge_domain_metadata_merges_key_by_key_the_edits_winning():
    # Given an image with two specifications, and edits of one of them plus a new one
    data = ServiceData(
        edits=edits(
            metadata={"domainMetadata": {"editorial": {"priority": 1}, "rights": {"region": "UK"}}}
        )
    )

    # When
    merged = merge(loader_image(), data)

    # Then the edited specification wins, the others are kept
    assert merged["metadata"]["domainMetadata"] == {
        "editorial": {"priority": 1},
        "archive": {"box": "B1"},
        "rights": {"region": "UK"},
    }


def test_merge_domain_metadata_when_the_image_has_none():
    image = loader_image(metadata={"title": "T"})
    data = ServiceData(edits=edits(metadata={"domainMetadata": {"editorial": {"priority": 1}}}))
    assert merge(image, data)["metadata"]["domainMetadata"] == {"editorial": {"priority": 1}}


def test_merge_without_edits_keeps_the_images_metadata():
    assert merge(loader_image(), ServiceData())["metadata"] == loader_image()["metadata"]


def test_merge_keeps_original_metadata_as_the_loader_made_it():
    data = ServiceData(edits=edits(metadata={"title": "Edited title"}))
    assert merge(loader_image(), data)["originalMetadata"] == {"title": "Original title"}


# -- usage rights, userMetadata ---------------------------------------------------


def test_merge_usage_rights_from_the_edits_when_present():
    data = ServiceData(edits=edits(usageRights={"category": "handout"}))
    merged = merge(loader_image(), data)
    assert merged["usageRights"] == {"category": "handout"}
    assert merged["originalUsageRights"] == {"category": "agency", "supplier": "Getty Images"}


def test_merge_usage_rights_of_the_image_when_the_edits_have_none():
    for data in (ServiceData(edits=edits()), ServiceData(edits=edits(usageRights=None))):
        merged = merge(loader_image(), data)
        assert merged["usageRights"] == {"category": "agency", "supplier": "Getty Images"}


def test_merge_no_rights_edit_replaces_the_images_rights():
    # {} is the Grid's NoRights: an edit to "no rights" is an edit.
    merged = merge(loader_image(), ServiceData(edits=edits(usageRights={})))
    assert merged["usageRights"] == {}


def test_merge_user_metadata_is_the_edits():
    value = edits(labels=["cover"], photoshoot={"title": "Spring"})
    assert merge(loader_image(), ServiceData(edits=value))["userMetadata"] == value


# -- lastModified ------------------------------------------------------------------


def test_merge_last_modified_from_leases():
    data = ServiceData(leases={"leases": [{"id": "l"}], "lastModified": "2024-03-01T00:00:00Z"})
    assert merge(loader_image(), data)["lastModified"] == "2024-03-01T00:00:00.000Z"


def test_merge_last_modified_from_crops():
    data = ServiceData(crops=[{"id": "c1", "date": "2024-03-02T00:00:00.5Z"}, {"id": "c2"}])
    assert merge(loader_image(), data)["lastModified"] == "2024-03-02T00:00:00.500Z"


def test_merge_last_modified_from_collections():
    collection = {"path": ["a"], "actionData": {"author": "x", "date": "2024-03-03T01:00:00+01:00"}}
    merged = merge(loader_image(), ServiceData(collections=[collection]))
    assert merged["lastModified"] == "2024-03-03T00:00:00.000Z"


def test_merge_last_modified_from_usages():
    usage = {"data": {"id": "u", "lastModified": "2024-03-04T00:00:00.123-05:00"}}
    merged = merge(loader_image(), ServiceData(usages=[usage]))
    assert merged["lastModified"] == "2024-03-04T05:00:00.123Z"


def test_merge_last_modified_from_edits():
    merged = merge(loader_image(), ServiceData(edits=edits(lastModified="2024-03-05T00:00:00Z")))
    assert merged["lastModified"] == "2024-03-05T00:00:00.000Z"


def test_merge_last_modified_is_the_latest_of_every_source():
    # Given a date from each source, the latest from the crops
    data = ServiceData(
        leases={"leases": [], "lastModified": "2024-01-01T00:00:00Z"},
        crops=[{"date": "2024-06-01T00:00:00Z"}, {"date": "2024-02-01T00:00:00Z"}],
        collections=[{"actionData": {"date": "2024-03-01T00:00:00.000+00:00"}}],
        usages=[{"data": {"lastModified": "2024-04-01T00:00:00Z"}}],
        edits=edits(lastModified="2024-05-01T00:00:00Z"),
    )

    # When / Then
    assert merge(loader_image(), data)["lastModified"] == "2024-06-01T00:00:00.000Z"


def test_merge_compares_dates_with_different_offsets_as_instants():
    # Given 12:00 at +02:00 (10:00 UTC), which reads later than 10:30Z but is earlier
    data = ServiceData(
        crops=[{"date": "2024-05-01T12:00:00+02:00"}],
        usages=[{"data": {"lastModified": "2024-05-01T10:30:00Z"}}],
    )

    # When / Then the 10:30 UTC instant wins
    assert merge(loader_image(), data)["lastModified"] == "2024-05-01T10:30:00.000Z"


def test_merge_without_any_source_date_leaves_last_modified_out():
    # Given an image whose loader projection carries a lastModified, and no source date
    merged = merge(loader_image(), ServiceData())

    # Then the field is absent (as the Grid leaves out None), as is its user-metadata twin
    assert "lastModified" not in merged
    assert "userMetadataLastModified" not in merged


# -- userMetadataLastModified ------------------------------------------------------


def test_merge_user_metadata_last_modified_is_the_edits():
    data = ServiceData(
        edits=edits(lastModified="2024-01-01T00:00:00+01:00"),
        crops=[{"date": "2024-06-01T00:00:00Z"}],
    )
    merged = merge(loader_image(), data)
    assert merged["userMetadataLastModified"] == "2023-12-31T23:00:00.000Z"
    assert merged["lastModified"] == "2024-06-01T00:00:00.000Z"


def test_merge_user_metadata_last_modified_falls_back_to_last_modified():
    data = ServiceData(edits=edits(), crops=[{"date": "2024-06-01T00:00:00Z"}])
    assert merge(loader_image(), data)["userMetadataLastModified"] == "2024-06-01T00:00:00.000Z"


# -- soft delete ---------------------------------------------------------------------


def test_merge_soft_deleted_metadata_when_deleted():
    record = {
        "id": "a",
        "isDeleted": True,
        "deleteTime": "2024-02-01T10:00:00+02:00",
        "deletedBy": "editor@example.org",
    }
    merged = merge(loader_image(), ServiceData(soft_delete=record))
    assert merged["softDeletedMetadata"] == {
        "deleteTime": "2024-02-01T08:00:00.000Z",
        "deletedBy": "editor@example.org",
    }


def test_merge_no_soft_deleted_metadata_when_restored_or_never_deleted():
    restored = {"id": "a", "isDeleted": False, "deleteTime": "2024-02-01T10:00:00Z"}
    image = loader_image(softDeletedMetadata={"deleteTime": "x", "deletedBy": "y"})
    for record in (restored, None):
        assert "softDeletedMetadata" not in merge(image, ServiceData(soft_delete=record))


# -- the services' own fields -------------------------------------------------------


def test_merge_unpacks_usages_from_their_entities():
    usage = {"id": "u1", "platform": "digital", "lastModified": "2024-01-01T00:00:00Z"}
    data = ServiceData(usages=[{"uri": "https://usage/u1", "data": usage}])
    assert merge(loader_image(), data)["usages"] == [usage]


def test_merge_sets_leases_collections_exports_and_syndication():
    leases = {"leases": [{"id": "l1", "access": "allow-use"}], "lastModified": None}
    collections = [{"path": ["news"], "pathId": "news", "description": "news"}]
    crops = [{"id": "0_0_10_10", "specification": {"type": "crop"}}]
    rights = {"rights": [{"rightCode": "R", "acquired": True}], "isInferred": False}
    merged = merge(
        loader_image(),
        ServiceData(leases=leases, collections=collections, crops=crops, syndication=rights),
    )
    assert merged["leases"] == leases
    assert merged["collections"] == collections
    assert merged["exports"] == crops
    assert merged["syndicationRights"] == rights


@pytest.mark.parametrize("call", sorted(DATA_CALLS))
def test_merge_not_found_gives_none_for_each_service(call):
    # Given an image the loader says has a bit of everything, and a 404 from `call`
    image = loader_image(
        leases={"leases": [{"id": "stale"}], "lastModified": "2020-01-01T00:00:00Z"},
        collections=[{"path": ["stale"]}],
        usages=[{"id": "stale"}],
        exports=[{"id": "stale"}],
        userMetadata={"labels": ["stale"]},
        syndicationRights={"rights": []},
        softDeletedMetadata={"deleteTime": "2020-01-01T00:00:00Z", "deletedBy": "x"},
    )
    data = ServiceData(**{call: None})

    # When
    merged = merge(image, data)

    # Then the service's field says "none"
    expected_absent = {
        "edits": "userMetadata",
        "syndication": "syndicationRights",
        "soft_delete": "softDeletedMetadata",
    }
    expected_empty = {
        "leases": ("leases", {"leases": [], "lastModified": None}),
        "collections": ("collections", []),
        "usages": ("usages", []),
        "crops": ("exports", []),
    }
    if call in expected_absent:
        assert expected_absent[call] not in merged
    else:
        field, empty = expected_empty[call]
        assert merged[field] == empty


def test_merge_passes_unknown_fields_through_untouched():
    image = loader_image(
        simFutureField={"version": 3, "nested": [1, {"a": None}]},
        thumbnail={"file": "t"},
        uploadInfo={"filename": "x.jpg"},
    )
    merged = merge(image, ServiceData(edits=edits(metadata={"title": "T"})))
    for key in ("simFutureField", "thumbnail", "uploadInfo", "fileMetadata", "identifiers"):
        assert merged[key] == image[key]
    assert merged["id"] == image["id"]
    assert merged["uploadTime"] == image["uploadTime"]


def test_merge_never_changes_its_inputs():
    # Given inputs that every rule touches
    image = loader_image()
    data = ServiceData(
        edits=edits(
            metadata={"title": "T", "domainMetadata": {"editorial": {"priority": 9}}},
            usageRights={"category": "handout"},
            lastModified="2024-01-01T00:00:00Z",
        ),
        usages=[{"data": {"lastModified": "2024-01-02T00:00:00Z"}}],
        soft_delete={"isDeleted": True, "deleteTime": "2024-01-01T00:00:00Z", "deletedBy": "x"},
    )
    image_before, data_before = copy.deepcopy(image), copy.deepcopy(data)

    # When the result is merged, then changed
    merged = merge(image, data)
    merged["metadata"]["title"] = "changed"
    merged["metadata"]["domainMetadata"]["editorial"]["priority"] = 0
    merged["userMetadata"]["labels"].append("changed")

    # Then neither input changed
    assert image == image_before
    assert data == data_before


@pytest.mark.parametrize(
    ("data", "call"),
    [
        (ServiceData(crops=[{"date": "yesterday"}]), "crops"),
        (ServiceData(leases={"leases": [], "lastModified": "2024-01-01T00:00:00"}), "leases"),
        (ServiceData(usages=[{"uri": "no data"}]), "usages"),
        (ServiceData(collections={"not": "a list"}), "collections"),
        (ServiceData(edits=["not", "an", "object"]), "edits"),
        (ServiceData(soft_delete={"isDeleted": True, "deleteTime": None}), "soft_delete"),
    ],
)
def test_merge_names_the_call_whose_data_is_malformed(data, call):
    with pytest.raises(ProjectionError) as caught:
        merge(loader_image(), data)
    assert caught.value.call == call
