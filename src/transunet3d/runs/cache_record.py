"""Which cached cases a model trained on: `cache.json` in its folder, checked when it resumes or is validated.

A resumed training or an out-of-fold validation reads the cache it is given now. If that cache holds other images
under the same case ids (another phantom series, a cache preprocessed again with other settings), the model would
go on learning from other data, or be scored on cases it trained on, while its config still named the first cache:
the record tells a moved or copied cache (the same digests, `data.cache.case_digests`) from another one.
"""

from __future__ import annotations

from pathlib import Path

from transunet3d.data.cache import case_digests
from transunet3d.errors import UserError, warn_input
from transunet3d.files import read_json, write_json
from transunet3d.runs.layout import ModelFolder

_SHOWN = 3  # case ids named in a refusal


def record_cache(folder: ModelFolder, preprocessed: Path, case_ids: list[str]) -> None:
    """Write `folder`'s cache.json: the cache's folder and the digest of each case the model trains on."""
    write_json(folder.cache, {"preprocessed": str(Path(preprocessed).resolve()),
                              "cases": case_digests(preprocessed, sorted(case_ids))})


def check_same_cache(folder: ModelFolder, preprocessed: Path, case_ids: list[str], recorded_path: str) -> None:
    """Refuse resuming `folder` on a cache whose cases differ from those it trained on.

    Args:
        case_ids: the cases the resumed training would read from `preprocessed`.
        recorded_path: the cache its config names, for a model trained before cache.json existed: then only a
            different folder can be told, with a warning.

    Raises:
        UserError: a case it trained on is missing or holds other content, or the training would read other cases.
    """
    if not folder.cache.is_file():
        if recorded_path and Path(recorded_path).resolve() != Path(preprocessed).resolve():
            warn_input(None, None, f"{folder.path}: trained on {recorded_path}, resumed on {preprocessed}; it has no "
                                   "cache.json (an older run), so the two caches cannot be compared")
        return
    changed, trained_on = _differing(folder, preprocessed, case_ids, also_unread=True)
    if changed:
        raise UserError(f"{folder.path}: {len(changed)} case(s) differ between the cache it trained on "
                        f"({trained_on}, by its cache.json) and {preprocessed} "
                        f"({_shown(changed)}: other content, missing or added); resume with the cache it trained "
                        "on, or train into another --out")


def check_cases_trained_on(folder: ModelFolder, preprocessed: Path, case_ids: list[str]) -> None:
    """Refuse reading `case_ids` (a fold's validation cases) from a cache where they hold other content than in
    the cache `folder` trained on: the out-of-fold scores would be of other cases. Nothing to compare for a model
    without cache.json.

    Raises:
        UserError: naming the cases that differ.
    """
    if not folder.cache.is_file():
        return
    changed, trained_on = _differing(folder, preprocessed, case_ids, also_unread=False)
    if changed:
        raise UserError(f"{preprocessed}: {len(changed)} validation case(s) hold other content than in the cache "
                        f"{folder.path} trained on ({trained_on}, by its "
                        f"cache.json): {_shown(changed)}; validate with the cache the run trained on")


def _differing(folder: ModelFolder, preprocessed: Path, case_ids: list[str],
               also_unread: bool) -> tuple[list[str], str | None]:
    """The cases of `case_ids` whose digest in `preprocessed` is not the one `folder`'s cache.json records (with
    `also_unread`, also the recorded cases not among them), and the cache the record names."""
    record = read_json(folder.cache)
    saved = record.get("cases") if isinstance(record, dict) else None
    if not isinstance(saved, dict):
        raise UserError(f"{folder.cache}: damaged: no case digests")
    now = case_digests(preprocessed, sorted(case_ids))
    compared = set(saved) | set(now) if also_unread else set(now)
    return sorted(case for case in compared if saved.get(case) != now.get(case)), record.get("preprocessed")


def _shown(cases: list[str]) -> str:
    return ", ".join(cases[:_SHOWN]) + (f" and {len(cases) - _SHOWN} more" if len(cases) > _SHOWN else "")
