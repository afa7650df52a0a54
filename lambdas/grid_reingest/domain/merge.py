"""The projection's merge rules: image-loader's image plus what the data services know.

Pure: no I/O. `merge` returns a new image and never changes its inputs.
Example::

    image = merge(loader_image, ServiceData(leases={"leases": [], "lastModified": None}))

Rules (SPEC §4; where the Grid's own merger differs, SPEC wins):

- `metadata`: the image's, with every field the edits' `metadata` sets
  (present and not null) replacing it — lists replace, they are not joined;
  `domainMetadata` merges key by key (one key per specification), the edits'
  specification replacing the image's whole.
- `usageRights`: the edits' when present and not null, else the image's.
- `userMetadata` = the edits; `leases`, `collections`, `usages` (each usage
  taken out of its entity), `exports` (= crops) and `syndicationRights` = what
  the services answered; `softDeletedMetadata` = `{deleteTime, deletedBy}`
  only when the record says `isDeleted`.
- `lastModified`: the latest of leases' `lastModified`, every crop's `date`,
  every collection's `actionData.date`, every usage's `lastModified` and the
  edits' `lastModified`, compared as instants.
- `userMetadataLastModified`: the edits' `lastModified`, else `lastModified`.
- Dates the merge writes are ISO-8601 UTC with milliseconds.

An optional field with no value (`lastModified` with no source date, no edits,
no syndication rights, not soft-deleted) is left out of the image, not written
as null: the Grid's writers leave out None, and its readers take absent and
null alike. Every other field of the image passes through untouched (shared,
not copied: treat the result as read-only, or copy it).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from grid_reingest.domain.isotime import format_instant, parse_instant

# What leases answers for an image with none (the Grid's own default on a 404).
NO_LEASES: Mapping[str, Any] = {"leases": [], "lastModified": None}


@dataclass(frozen=True)
class ServiceData:
    """The `data` of each data service's 200 answer; None where it answered 404 ("none").

    The field names are those of grid.DATA_CALLS.
    """

    leases: Any = None  # {"leases": [...], "lastModified": date | null}
    collections: Any = None  # [{"path", "pathId", "description", "actionData": {...}}]
    edits: Any = None  # {"archived", "labels", "metadata", "usageRights", "lastModified", ...}
    syndication: Any = None  # syndication rights
    usages: Any = None  # [{"data": Usage, ...}] — entities, unpacked by the merge
    crops: Any = None  # [Crop]
    soft_delete: Any = None  # {"id", "isDeleted", "deleteTime", "deletedBy"}


class ProjectionError(ValueError):
    """A service's data does not have the shape the merge needs; `call` names the call."""

    def __init__(self, call: str, detail: str) -> None:
        super().__init__(f"{call}: {detail}")
        self.call = call
        self.detail = detail


def merge(image: Mapping[str, Any], data: ServiceData) -> dict[str, Any]:
    """The projected image: `image` (image-loader's) merged with the services' `data`.

    Raises ProjectionError when a service's data is not shaped as the Grid's.
    """
    leases = _mapping(data.leases if data.leases is not None else NO_LEASES, "leases")
    collections = _list(data.collections, "collections")
    usages = _usages(data.usages)
    crops = _list(data.crops, "crops")
    edits = None if data.edits is None else _mapping(data.edits, "edits")
    soft_delete = None if data.soft_delete is None else _mapping(data.soft_delete, "soft_delete")

    merged = dict(image)
    merged["metadata"] = _metadata(image.get("metadata"), edits)
    if edits is not None and edits.get("usageRights") is not None:
        merged["usageRights"] = copy.deepcopy(edits["usageRights"])
    _put(merged, "userMetadata", copy.deepcopy(edits))
    merged["leases"] = copy.deepcopy(dict(leases))
    merged["collections"] = copy.deepcopy(collections)
    merged["usages"] = copy.deepcopy(usages)
    merged["exports"] = copy.deepcopy(crops)
    _put(merged, "syndicationRights", copy.deepcopy(data.syndication))
    _put(merged, "softDeletedMetadata", _soft_deleted(soft_delete))

    last_modified = _latest(_candidate_dates(leases, crops, collections, usages, edits))
    edits_modified = _edits_last_modified(edits)
    _put(merged, "lastModified", _format(last_modified))
    _put(merged, "userMetadataLastModified", _format(edits_modified or last_modified))
    return merged


# -- metadata -------------------------------------------------------------------


def _metadata(original: Any, edits: Mapping[str, Any] | None) -> dict[str, Any]:
    metadata = copy.deepcopy(dict(original)) if isinstance(original, Mapping) else {}
    overrides = edits.get("metadata") if edits is not None else None
    if overrides is None:
        return metadata
    overrides = _mapping(overrides, "edits", "metadata")
    for key, value in overrides.items():
        if value is None:
            continue
        if key == "domainMetadata":
            metadata[key] = _domain_metadata(metadata.get(key), value)
        else:
            metadata[key] = copy.deepcopy(value)
    return metadata


def _domain_metadata(original: Any, edited: Any) -> dict[str, Any]:
    edited = _mapping(edited, "edits", "metadata.domainMetadata")
    merged = dict(original) if isinstance(original, Mapping) else {}
    for specification, fields in edited.items():
        if fields is not None:
            merged[specification] = copy.deepcopy(fields)
    return merged


# -- other fields -----------------------------------------------------------------


def _usages(entities: Any) -> list[Any]:
    usages = []
    for i, entity in enumerate(_list(entities, "usages")):
        if not isinstance(entity, Mapping) or not isinstance(entity.get("data"), Mapping):
            raise ProjectionError("usages", f"entity {i} has no usage under 'data'")
        usages.append(entity["data"])
    return usages


def _soft_deleted(record: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if record is None or record.get("isDeleted") is not True:
        return None
    deleted_at = _instant(record.get("deleteTime"), "soft_delete", "deleteTime")
    return {"deleteTime": format_instant(deleted_at), "deletedBy": record.get("deletedBy")}


def _candidate_dates(
    leases: Mapping[str, Any],
    crops: list[Any],
    collections: list[Any],
    usages: list[Any],
    edits: Mapping[str, Any] | None,
) -> list[datetime]:
    dates = []
    if leases.get("lastModified") is not None:
        dates.append(_instant(leases["lastModified"], "leases", "lastModified"))
    for i, crop in enumerate(crops):
        date = crop.get("date") if isinstance(crop, Mapping) else None
        if date is not None:
            dates.append(_instant(date, "crops", f"[{i}].date"))
    for i, collection in enumerate(collections):
        action = collection.get("actionData") if isinstance(collection, Mapping) else None
        date = action.get("date") if isinstance(action, Mapping) else None
        if date is not None:
            dates.append(_instant(date, "collections", f"[{i}].actionData.date"))
    for i, usage in enumerate(usages):
        if usage.get("lastModified") is not None:
            dates.append(_instant(usage["lastModified"], "usages", f"[{i}].lastModified"))
    edited = _edits_last_modified(edits)
    if edited is not None:
        dates.append(edited)
    return dates


def _edits_last_modified(edits: Mapping[str, Any] | None) -> datetime | None:
    if edits is None or edits.get("lastModified") is None:
        return None
    return _instant(edits["lastModified"], "edits", "lastModified")


def _latest(dates: list[datetime]) -> datetime | None:
    # Aware datetimes compare as instants, whatever their offsets.
    return max(dates, default=None)


def _format(value: datetime | None) -> str | None:
    return None if value is None else format_instant(value)


def _put(image: dict[str, Any], key: str, value: Any) -> None:
    if value is None:
        image.pop(key, None)
    else:
        image[key] = value


# -- shapes -------------------------------------------------------------------------


def _instant(value: Any, call: str, where: str) -> datetime:
    if not isinstance(value, str):
        raise ProjectionError(call, f"{where} is {value!r}, not an ISO-8601 date")
    try:
        return parse_instant(value)
    except ValueError as error:
        raise ProjectionError(call, f"{where}: {error}") from None


def _mapping(value: Any, call: str, where: str = "data") -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ProjectionError(call, f"{where} is {type(value).__name__}, not an object")
    return value


def _list(value: Any, call: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ProjectionError(call, f"data is {type(value).__name__}, not a list")
    return value
