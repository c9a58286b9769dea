"""The install recipes a fresh machine runs: ./run, the setup action's resolver pins."""

from __future__ import annotations

from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]


def _pins(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            req = Requirement(line)
            spec = str(req.specifier)
            assert spec.startswith("==") and "," not in spec, f"{path.name}: not a pin: {line}"
            out[req.name.lower().replace("_", "-")] = spec[2:]
    return out


def test_constraints_pin_every_line_without_local_paths():
    pins = _pins(ROOT / "constraints.txt")
    assert len(pins) > 100
    assert "mlcd-actions" not in pins


def test_resolver_pins_agree_with_the_lock():
    lock = _pins(ROOT / "constraints.txt")
    hints = _pins(ROOT / "action-templates/setup/resolver-pins.txt")
    assert {"boto3", "botocore", "aiobotocore"} <= hints.keys()
    for name, version in hints.items():
        assert lock.get(name) == version, f"{name}: resolver pin {version}, lock {lock.get(name)}"


def test_installers_use_the_pins():
    assert "-c constraints.txt" in (ROOT / "run").read_text()
    setup = (ROOT / "action-templates/setup/action.yml").read_text()
    assert "resolver-pins.txt" in setup
