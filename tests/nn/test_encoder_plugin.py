"""Your own encoder, from a module outside cyto: config, TOML, CLI, and clear errors."""

from __future__ import annotations

import textwrap

import pytest
import torch

from cyto.cli import main
from cyto.nn import Cytoself, CytoselfConfig, list_encoders, resolve_encoder

from .helpers import make_store

PLUGIN = textwrap.dedent(
    """
    from torch import nn

    def pair(*, in_channels, local_channels, global_channels, hidden=16):
        enc1 = nn.Sequential(
            nn.Conv2d(in_channels, hidden, 4, stride=4), nn.ReLU(),
            nn.Conv2d(hidden, local_channels, 1),
        )
        enc2 = nn.Conv2d(local_channels, global_channels, 2, stride=2)
        return enc1, enc2

    def wrong_width(*, in_channels, local_channels, global_channels):
        return nn.Conv2d(in_channels, 3, 4, stride=4), nn.Conv2d(3, global_channels, 1)

    NOT_A_FACTORY = 3
    """
)


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    (tmp_path / "my_cells_encoders.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    return "my_cells_encoders"


def test_an_encoder_from_another_package_plugs_in_by_path(plugin) -> None:
    cfg = CytoselfConfig.preset("tiny", encoder=f"{plugin}:pair", encoder_options={"hidden": 8})
    assert f"{plugin}:pair" in list_encoders()
    model = Cytoself(cfg.replace(image_size=32, in_channels=2, num_classes=3))
    out = model(torch.zeros(2, 2, 32, 32))
    assert out.logits_global.shape == (2, 3)
    assert CytoselfConfig.from_dict(cfg.to_dict()) == cfg  # survives the checkpoint's JSON


def test_a_broken_encoder_path_gets_a_sentence(plugin) -> None:
    with pytest.raises(ValueError, match=r"cannot import 'no_such_pkg\.enc'"):
        resolve_encoder("no_such_pkg.enc:pair")
    with pytest.raises(ValueError, match="has no attribute 'nope'"):
        resolve_encoder(f"{plugin}:nope")
    with pytest.raises(ValueError, match="not a factory"):
        resolve_encoder(f"{plugin}:NOT_A_FACTORY")
    with pytest.raises(ValueError, match=r"unknown encoder 'effnet'.*package.module:factory"):
        CytoselfConfig(encoder="effnet")
    cfg = CytoselfConfig.preset("tiny", encoder=f"{plugin}:wrong_width")
    with pytest.raises(ValueError, match=r"encoder1 of .* gives local representation"):
        Cytoself(cfg.replace(image_size=32))


def test_cli_and_toml_train_with_a_plugin_encoder(plugin, tmp_path, capsys) -> None:
    store = make_store(tmp_path / "s.h5", size=32)
    common = ["--preset", "tiny", "--max-epochs", "1", "--batch-size", "8", "--quiet"]
    common += ["--threads", "1"]
    run = tmp_path / "cli"
    assert main(["train", str(store), "-o", str(run), "--encoder", f"{plugin}:pair", *common]) == 0
    assert '"encoder": "my_cells_encoders:pair"' in (run / "config.json").read_text()
    toml = tmp_path / "run.toml"
    toml.write_text(f'[model]\nencoder = "{plugin}:pair"\nencoder_options = {{hidden = 4}}\n')
    run2 = tmp_path / "toml"
    assert main(["train", str(store), "-o", str(run2), "--config", str(toml), *common]) == 0
    assert '"hidden": 4' in (run2 / "config.json").read_text()
    bad = main(["train", str(store), "-o", str(tmp_path / "bad"), "--encoder", "nope:x", *common])
    assert bad == 2 and "cannot import 'nope'" in capsys.readouterr().err
