"""The brats-mets-2025 scheme through the real commands: cavities (label 4) validated, preprocessed, trained on as
a fourth region, and predicted back as labels 0-4 with the probabilities of WT, TC, ET and RC."""

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import yaml
from click.testing import CliRunner

from tests.factories import SMALL_PATCHES, add_cavities
from transunet3d.cli.main import cli
from transunet3d.data.phantom import PhantomSpec, write_phantoms
from transunet3d.inference.trained import load_trained_model

SCHEME = ("--labels", "brats-mets-2025")
FAST = ("--set", "loop.epochs=1", "--set", "loop.iterations_per_epoch=2", "--set", "loop.val_batches=1",
        *SMALL_PATCHES)


def invoke(*args: object):
    result = CliRunner().invoke(cli, [str(arg) for arg in args])
    assert result.exit_code == 0, result.output
    return result


def test_cavities_from_validation_to_prediction(tmp_path: Path):
    raw, pre, run, out = tmp_path / "raw", tmp_path / "pre", tmp_path / "run", tmp_path / "out"
    write_phantoms(raw, cases=2, seed=11, spec=PhantomSpec(shape=(48, 56, 48), lesions=(2, 3)), progress=False)
    assert len(add_cavities(raw)) == 2
    assert invoke("validate", raw, *SCHEME).stdout.strip() == "2 of 2 cases are valid"
    assert "labels brats-mets-2025" in invoke("preprocess", raw, pre, *SCHEME).stdout
    invoke("splits", pre, "--folds", "2")
    trained = invoke("train", pre, "--preset", "tiny", "--fold", "0", "--out", run, "--device", "cpu", *FAST)
    assert "fold 0 validation" in trained.output
    # The out-of-fold validation predicted the held-out case with the four regions and scored it against its
    # reference with the cavity, by the 2023 lesion-wise metrics over the four regions (brats2023-rc).
    validation = run / "fold_0" / "validation"
    summary = json.loads((validation / "summary.json").read_text())
    assert summary["rules"] == "brats2023-rc" and summary["cases_scored"] == 1
    assert list(summary["regions"]) == ["WT", "TC", "ET", "RC"]
    cavity = summary["regions"]["RC"]
    assert cavity["total_num_tp"] + cavity["total_num_fn"] >= 1  # the held-out reference's cavity was scored
    invoke("crossval", run)
    pooled = json.loads((run / "cv" / "summary.json").read_text())
    assert pooled["rules"] == "brats2023-rc" and list(pooled["regions"]) == ["WT", "TC", "ET", "RC"]
    (held_out,) = validation.glob("predictions/*_probabilities.npz")
    assert list(np.load(held_out)["regions"]) == ["WT", "TC", "ET", "RC"]
    (reference,) = validation.glob("references/*-seg.nii.gz")
    assert 4 in np.unique(np.asanyarray(nib.load(reference).dataobj))
    model = load_trained_model(run / "fold_0")
    assert yaml.safe_load((run / "fold_0" / "config.yaml").read_text())["data"]["labels"] == "brats-mets-2025"
    assert model.network.spec.num_regions == 4 and all(head.out_channels == 4 for head in model.network.heads)
    invoke("predict", raw, out, "--model", run, "--tta", "none", "--save-probabilities", "--device", "cpu")
    for case in sorted(p.name for p in raw.iterdir() if p.is_dir()):
        labels = np.asanyarray(nib.load(out / f"{case}.nii.gz").dataobj)
        assert set(np.unique(labels)) <= {0, 1, 2, 3, 4}
        saved = np.load(out / f"{case}_probabilities.npz")
        assert list(saved["regions"]) == ["WT", "TC", "ET", "RC"]
        assert saved["probabilities"].shape == (4, *labels.shape)
    scored = invoke("evaluate", out, raw, "--rules", "brats2025", "--out", tmp_path / "m.csv",
                    "--summary", tmp_path / "s.json")
    assert "2 cases scored (brats2025 rules)" in scored.stdout.splitlines()
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["rules"] == "brats2025" and list(summary["regions"]) == ["WT", "TC", "ET", "RC"]
    cavities = summary["regions"]["RC"]["mean"]
    assert cavities["all_instance_tp"] + cavities["all_instance_fn"] > 0  # the references' cavities were scored
