"""Parameter profiles: named sets of params.yaml overrides (``configs/profiles/<name>.yaml``).

A profile runs as one DVC experiment: ``scripts/profile <name>`` is ``dvc exp run -n <name>``
with every override passed as ``-S key=value``, so DVC writes the values into the experiment's
params.yaml and dvc.lock — the record of what was actually used (``dvc exp show``). A profile
may ``extends:`` another; every key must already exist in params.yaml (a typo stops the run).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

PROFILE_DIR = Path("configs/profiles")


def load_profile(name: str | Path, profile_dir: str | Path = PROFILE_DIR) -> dict:
    """The overrides of a profile, with ``extends`` resolved (the child wins)."""
    import yaml

    path = Path(name)
    if path.suffix not in (".yaml", ".yml"):  # a name ("paper-qwen2.5-7b" has a dot, too)
        path = Path(profile_dir) / f"{name}.yaml"
    if not path.exists():
        known = sorted(p.stem for p in Path(profile_dir).glob("*.yaml"))
        raise FileNotFoundError(f"no profile {name!r} ({path}); known: {', '.join(known)}")
    data = yaml.safe_load(path.read_text()) or {}
    parent = data.pop("extends", None)
    if parent is None:
        return data
    return merge(load_profile(path.parent / parent, profile_dir), data)


def merge(base: dict, override: dict) -> dict:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def flatten(overrides: dict, params: dict, prefix: str = "") -> dict[str, object]:
    """Dotted keys to values. A mapping in params.yaml is descended into; a key params.yaml does
    not have raises (``-S`` would silently add it and no stage would read it)."""
    flat: dict[str, object] = {}
    for key, value in overrides.items():
        dotted = f"{prefix}{key}"
        if not isinstance(params, dict) or key not in params:
            raise KeyError(f"profile key {dotted!r} is not in params.yaml")
        if isinstance(value, dict) and isinstance(params[key], dict) and value:
            flat.update(flatten(value, params[key], dotted + "."))
        else:
            flat[dotted] = value
    return flat


def _yaml_value(value: object) -> str:
    """JSON, which DVC parses as YAML (null, lists, maps) — except that a float keeps a dot in
    its mantissa: YAML 1.1 parsers read ``1e-06`` as a string, ``1.0e-06`` as a float."""
    text = json.dumps(value)
    if isinstance(value, float) and "e" in text and "." not in text.split("e")[0]:
        text = text.replace("e", ".0e", 1)
    return text


def set_args(flat: dict[str, object]) -> list[str]:
    """``-S key=value`` pairs for ``dvc exp run``."""
    args = []
    for key, value in flat.items():
        args += ["-S", f"{key}={_yaml_value(value)}"]
    return args


def command(name: str, params_path: str | Path = "params.yaml", extra: list[str] | None = None):
    import yaml

    params = yaml.safe_load(Path(params_path).read_text())
    flat = flatten(load_profile(name), params)
    exp_name = Path(name).stem if str(name).endswith((".yaml", ".yml")) else str(name)
    return ["dvc", "exp", "run", "-n", exp_name, *set_args(flat), *(extra or [])]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/profile", description="Run the pipeline as a DVC experiment of a profile."
    )
    parser.add_argument("name", help="a profile in configs/profiles (e.g. paper-qwen2.5-7b)")
    parser.add_argument("--dry", action="store_true", help="print the dvc command, run nothing")
    args, extra = parser.parse_known_args(argv)  # anything else goes to `dvc exp run`
    try:
        cmd = command(args.name, extra=extra)
    except (FileNotFoundError, KeyError) as exc:
        print(f"profile: {exc}", file=sys.stderr)
        return 2
    print(" ".join(cmd))
    if args.dry:
        return 0
    return subprocess.run(cmd).returncode


if __name__ == "__main__":
    sys.exit(main())
