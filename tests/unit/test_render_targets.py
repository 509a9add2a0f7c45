"""The renderings checked in (``envoy/local/``): up to date, valid for the real Envoy, what a
default ``boutique up`` runs, and ``boutique render --check`` failing when they drift."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from boutique import cli
from mesh import topology
from mesh.local import LocalOptions, LocalRun, envoy_binary
from mesh.render import targets

LOCAL = targets.ROOT / "envoy" / "local"


def test_render_check_passes_on_the_tree(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["render", "--check"]) == 0, capsys.readouterr().out


def test_every_checked_in_config_passes_envoy_validate_with_fresh_certificates(
    tmp_path: Path,
) -> None:
    LocalRun(topology.load(), LocalOptions(run_dir=tmp_path / ".run")).mint()
    files = sorted(LOCAL.glob("*.yaml"))
    assert {p.stem for p in files} >= {"ingress", "cart-0", "products-1"}
    for path in files:
        result = subprocess.run(
            [envoy_binary(), "--mode", "validate", "-c", str(path), "--log-level", "error"],
            cwd=tmp_path,  # the configs name certificates under .run/, as `boutique up` makes them
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, f"{path.name}: {result.stdout}{result.stderr}"


def test_the_checked_in_configs_are_what_boutique_up_runs(tmp_path: Path) -> None:
    run = LocalRun(topology.load(), LocalOptions(run_dir=tmp_path / ".run"))
    for name, path in run.render().items():
        ran = path.read_text().replace(str(run.run_dir), ".run")
        checked_in = (LOCAL / f"{name}.yaml").read_text()
        assert not checked_in.startswith(ran)
        assert checked_in.endswith(ran), name
        assert yaml.safe_load(checked_in) == yaml.safe_load(ran)


def _tree(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    shutil.copytree(LOCAL, root / "envoy" / "local")
    return root


def test_a_changed_topology_makes_the_check_fail_naming_the_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = yaml.safe_load(topology.DEFAULT_PATH.read_text())
    raw["services"]["cart"]["calls"]["products"]["timeout"] = "3s"
    changed = tmp_path / "topology.yaml"
    changed.write_text(yaml.safe_dump(raw, sort_keys=False))
    assert cli.main(["render", "--check", "--topology", str(changed)]) == 1
    out = capsys.readouterr().out
    assert "stale:     envoy/local/cart-0.yaml" in out
    assert "gateway-0" not in out  # only what changed
    assert "boutique render" in out


def test_missing_and_left_over_files_are_named_and_render_puts_them_right(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _tree(tmp_path)
    (root / "envoy" / "local" / "orders-0.yaml").unlink()
    (root / "envoy" / "local" / "nowhere-0.yaml").write_text("node: {}\n")
    (root / "envoy" / "local" / "README.txt").write_text("not owned: left alone\n")
    assert cli.main(["render", "--check", "--root", str(root)]) == 1
    out = capsys.readouterr().out
    assert "missing:   envoy/local/orders-0.yaml" in out
    assert "left over: envoy/local/nowhere-0.yaml" in out
    assert "README" not in out
    assert cli.main(["render", "--root", str(root)]) == 0
    assert cli.main(["render", "--check", "--root", str(root)]) == 0
    assert (root / "envoy" / "local" / "README.txt").exists()
    assert not (root / "envoy" / "local" / "nowhere-0.yaml").exists()


def test_render_with_a_run_dir_writes_that_runs_configs_and_certificates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["render", "--run-dir", str(tmp_path), "--base-port", "21000"]) == 0
    assert (tmp_path / "certs" / "root-cert.pem").exists()
    config = yaml.safe_load((tmp_path / "envoy" / "gateway-0.yaml").read_text())
    assert config["admin"]["address"]["pipe"]["path"] == str(tmp_path / "pods/gateway-0/admin.sock")
    inbound = next(x for x in config["static_resources"]["listeners"] if x["name"] == "inbound")
    assert inbound["address"]["socket_address"]["port_value"] == 21011
    assert "ingress" in capsys.readouterr().out
