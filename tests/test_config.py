"""Bad input fails at the edge, before any training, with a message that names the field."""

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from rnnprune.config import load_config, validate_config
from rnnprune.errors import ConfigError, DataError
from rnnprune.training.runner import run_trial


def _with(raw: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A deep copy of `raw` with `path` set to `value`."""
    raw = copy.deepcopy(raw)
    node = raw
    *parents, last = path.split(".")
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value
    return raw


@pytest.mark.parametrize(
    "path, value, expected",
    [
        (
            "pruning.method",
            "magic",
            r"pruning\.method: unknown pruning method 'magic'.*global_magnitude",
        ),
        ("pruning.target_sparsity", 1.0, r"pruning\.target_sparsity: .*less than 1"),
        (
            "pruning.target_sparsity",
            -0.1,
            r"pruning\.target_sparsity: .*greater than or equal to 0",
        ),
        (
            "pruning.sparsity",
            0.5,
            r"pruning\.sparsity: unknown field; allowed here: method, params",
        ),
        (
            "model.hiden_size",
            64,
            r"model\.hiden_size: unknown field; allowed here: cell, hidden_size",
        ),
        ("bogus", 1, r"bogus: unknown field; allowed here: task, model"),
        ("model.cell", "transformer", r"model\.cell: .*'lstm'"),
        ("pruning.scope", ["ih", "ih"], r"pruning\.scope: .*repeated"),
        ("pruning.scope", ["weights"], r"pruning\.scope\.0: "),
        ("pruning.schedule", {"kind": "sometimes"}, r"pruning\.schedule: .*one_shot"),
        (
            "pruning.schedule",
            {"kind": "iterative", "rounds": 0},
            r"pruning\.schedule\.rounds: .*greater than or equal to 1",
        ),
        (
            "pruning.schedule",
            {"kind": "gradual", "cubic": True},
            r"pruning\.schedule\.cubic: unknown field",
        ),
        (
            "pruning.params",
            {"layerwise": True},
            r"pruning\.params\.layerwise: unknown parameter; allowed: none",
        ),
        ("task.name", "imagenet", r"task\.name: unknown task 'imagenet'"),
        ("task.params", {"variant": "column"}, r"task\.params\.variant: .*'row'"),
        ("training.lr", 0, r"training\.lr: .*greater than 0 \(got 0\)"),
        ("training.optimizer", "lion", r"training\.optimizer: "),
        ("seed", -1, r"seed: .*greater than or equal to 0"),
    ],
)
def test_bad_field_is_named(trial_dict: dict[str, Any], path: str, value: Any, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        validate_config(_with(trial_dict, path, value))


def test_method_params_are_validated_by_the_method(trial_dict: dict[str, Any]) -> None:
    raw = _with(_with(trial_dict, "pruning.method", "random"), "pruning.params", {"layerwise": "often"})
    with pytest.raises(ConfigError, match=r"pruning\.params\.layerwise: .*boolean"):
        validate_config(raw)
    ok = validate_config(
        _with(_with(trial_dict, "pruning.method", "random"), "pruning.params", {"layerwise": True})
    )
    assert ok.pruning.typed_params.layerwise is True


def test_yaml_file_and_overrides(tmp_path: Path, trial_dict: dict[str, Any]) -> None:
    path = tmp_path / "trial.yaml"
    path.write_text(yaml.safe_dump(trial_dict))
    config = load_config(path, ["pruning.target_sparsity=0.95", "model.hidden_size=32"])
    assert config.pruning.target_sparsity == 0.95 and config.model.hidden_size == 32
    with pytest.raises(
        ConfigError, match=r"invalid trial config .*trial\.yaml:\n  model\.layers: unknown field"
    ):
        load_config(path, ["model.layers=2"])
    with pytest.raises(ConfigError, match=r"key\.path=value"):
        load_config(path, ["seed"])
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(tmp_path / "list.yaml")


def test_hashes_ignore_locations_but_not_hyperparameters(trial_dict: dict[str, Any]) -> None:
    base = validate_config(trial_dict)
    moved = validate_config(_with(trial_dict, "task.data_dir", "/elsewhere"))
    assert base.hash() == moved.hash()
    other_target = validate_config(_with(trial_dict, "pruning.target_sparsity", 0.5))
    assert other_target.hash() != base.hash()
    assert other_target.dense_hash() == base.dense_hash()  # pruning does not define the dense phase
    other_seed = validate_config(_with(trial_dict, "seed", 1))
    assert other_seed.dense_hash() != base.dense_hash()


def test_missing_data_fails_before_training(trial_dict: dict[str, Any], tmp_path: Path) -> None:
    config = validate_config(_with(trial_dict, "task.data_dir", str(tmp_path / "nowhere")))
    with pytest.raises(
        DataError, match=r"(?s)task\.data_dir.*RNNPRUNE_DATA_DIR.*MNIST/raw/train-images-idx3-ubyte"
    ):
        run_trial(config, tmp_path / "out")
    assert not (tmp_path / "cache").exists()  # no dense training started
    assert not (tmp_path / "out").exists()


def test_offline_download_failure_names_the_option(
    trial_dict: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torchvision.datasets.mnist as tv_mnist

    def offline(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz: no network")

    monkeypatch.setattr(tv_mnist.MNIST, "download", offline)
    raw = _with(_with(trial_dict, "task.data_dir", str(tmp_path / "empty")), "task.download", True)
    with pytest.raises(DataError, match=r"(?s)Error downloading.*task\.data_dir"):
        run_trial(validate_config(raw), tmp_path / "out")


def test_data_dir_falls_back_to_the_environment(
    trial_dict: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mnist_root: Path
) -> None:
    from rnnprune.data.base import resolve_data_root

    monkeypatch.setenv("RNNPRUNE_DATA_DIR", str(mnist_root))
    assert resolve_data_root(None) == mnist_root
    assert resolve_data_root(tmp_path) == tmp_path
    monkeypatch.delenv("RNNPRUNE_DATA_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert resolve_data_root(None) == tmp_path / "rnnprune" / "data"


@pytest.mark.parametrize(
    "content, expected",
    [
        (b"seed: 1\nmodel: {}\nseed: 2\n", r"trial\.yaml:3: key 'seed' appears twice \(lines 1 and 3\)"),
        (b"pruning:\n  method: random\n  method: lattice\n", r":3: key 'method' appears twice"),
        ("seed: 1  # caf\xe9\n".encode("latin-1"), r"not UTF-8 text \(byte 0xe9 at offset 14\)"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", r"is a binary file, not YAML text"),
        (b"seed: [1\n", r"trial\.yaml:2 is not valid YAML"),
        (b"- seed\n- 1\n", r"must hold a mapping of fields at the top level"),
    ],
)
def test_malformed_config_files_get_one_line_errors(tmp_path: Path, content: bytes, expected: str) -> None:
    path = tmp_path / "trial.yaml"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=expected) as raised:
        load_config(path)
    assert "\n" not in str(raised.value)


def test_a_folder_is_not_a_config(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a folder; pass the path to a YAML file"):
        load_config(tmp_path)


@pytest.mark.parametrize(
    "path, value, expected",
    [
        ("task.name", "no_such_module_xyz:TASK", r"task\.name: .*'no_such_module_xyz' does not import"),
        ("task.name", "rnnprune.data.adding:NOPE", r"task\.name: .*'rnnprune\.data\.adding' has no 'NOPE'"),
        ("task.name", "rnnprune.data.adding:AddingParams", r"task\.name: .* is a ModelMetaclass, not a Task"),
        ("pruning.method", "rnnprune.pruning.magnitude:TASK", r"pruning\.method: .*has no 'TASK'"),
        ("pruning.method", "rnnprune.data.adding:TASK", r"pruning\.method: .*is a Task, not a PruningMethod"),
        ("pruning.method", 3, r"pruning\.method: give a name as text"),
    ],
)
def test_bad_plugin_references_are_named(
    trial_dict: dict[str, Any], path: str, value: Any, expected: str
) -> None:
    with pytest.raises(ConfigError, match=expected):
        validate_config(_with(trial_dict, path, value))


def test_plugins_by_reference_validate_like_registered_names(trial_dict: dict[str, Any]) -> None:
    config = validate_config(_with(trial_dict, "pruning.method", "rnnprune.pruning.random:RANDOM"))
    assert config.pruning.typed_params.layerwise is False


def test_the_old_spelling_of_a_parameter_still_works_and_warns(trial_dict: dict[str, Any]) -> None:
    raw = _with(trial_dict, "pruning", {"method": "lattice", "params": {"normalisation": "row"}})
    with pytest.warns(FutureWarning, match="normalisation is deprecated; write normalization"):
        assert validate_config(raw).pruning.typed_params.normalization == "row"
    both = _with(raw, "pruning.params.normalization", "max")
    with pytest.raises(ConfigError, match="give normalization only"):
        validate_config(both)
