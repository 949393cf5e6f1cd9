"""`make mediapipe-ref`: Google's MediaPipe 0.10.14 on frames the project makes, as the reference the face and
selfie pipelines are tested against (tests/test_mediapipe_reference.py, benchmarks/mediapipe_agreement.py).

The Makefile installs mediapipe==0.10.14 into its own environment (.mediapipe-venv; the project's .venv never
sees it). This script, run with the project's Python from the repository's root:
1. makes the frames (scripts/face_frames.py) in a staging folder beside --out,
2. runs scripts/mediapipe_reference.py with MediaPipe's Python on them (reference.json, selfie_masks.npz),
3. publishes frames/, the reference and key.json into --out through contract.outputs (a manifest of exactly
   these files; a file of anyone else's in --out is never replaced, and refuses the run).
It is cached: key.json holds the sha256 of both scripts, of the photograph and MediaPipe's version, and a
second run with the same key and the files unchanged does nothing.

    python -m scripts.mediapipe_ref [--out .mediapipe-ref] [--venv .mediapipe-venv] [--photo .models/astronaut.png]
                                    [--force]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from contract.errors import UserError
from contract.files import sha256_file
from contract.manifest import ownership
from contract.outputs import check_output_folder, discard, folder_lock, make_staging, publish, resolve_out

KIND = "mediapipe-ref"
MEDIAPIPE = "mediapipe==0.10.14"
HERE = Path(__file__).resolve().parent
SCRIPTS = (HERE / "face_frames.py", HERE / "mediapipe_reference.py")


def cache_key(photo: Path) -> dict:
    return {"mediapipe": MEDIAPIPE, "photo": sha256_file(photo),
            **{p.name: sha256_file(p) for p in SCRIPTS}}


def up_to_date(out: Path, key: dict) -> bool:
    """An earlier run's outputs with the same key, none of them changed or missing."""
    try:
        if json.loads((out / "key.json").read_text()) != key:
            return False
    except (OSError, ValueError):
        return False
    own = ownership(out, KIND)
    listed = {rel for rel, facts in own.manifest.items() if facts.get("kind") == KIND}
    return "reference.json" in listed and listed <= set(own.owned)


def build(out: Path, venv_python: Path, photo: Path, key: dict, force: bool = False) -> None:
    from scripts.face_frames import write_frames

    if not venv_python.is_file():
        raise UserError(f"{venv_python} does not exist; `make mediapipe-ref` installs {MEDIAPIPE} there first")
    check_output_folder(out, kind=KIND, force=force)      # before any work: someone else's file refuses the run
    staging = make_staging(out)
    try:
        write_frames(photo, staging / "frames")
        proc = subprocess.run([str(venv_python), str(HERE / "mediapipe_reference.py"), str(staging / "frames"),
                               str(staging)], capture_output=True, text=True)
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["no message"])[-1]
            raise UserError(f"MediaPipe failed on the reference frames ({last}); see {venv_python.parent.parent}")
        (staging / "key.json").write_text(json.dumps(key, indent=1) + "\n")
        publish(staging, out, kind=KIND, force=force)
    except BaseException:
        discard(staging)
        raise


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m scripts.mediapipe_ref", description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=".mediapipe-ref")
    ap.add_argument("--venv", default=".mediapipe-venv", help="MediaPipe's own environment (make mediapipe-ref)")
    ap.add_argument("--photo", default=".models/astronaut.png")
    ap.add_argument("--force", action="store_true", help="let --out hold other files (they are kept)")
    args = ap.parse_args(argv)
    try:
        photo = Path(args.photo)
        if not photo.is_file():
            raise UserError(f"{photo} does not exist; run `make mediapipe-models` first")
        out, key = resolve_out(args.out), cache_key(photo)
        with folder_lock(out, what="mediapipe-ref"):
            if up_to_date(out, key):
                print(f"mediapipe-ref: {out} is up to date")
                return 0
            build(out, Path(args.venv) / "bin" / "python", photo, key, args.force)
    except UserError as e:
        print(f"mediapipe-ref: {e}", file=sys.stderr)
        return 2
    print(f"mediapipe-ref: MediaPipe's outputs on the reference frames in {out}; "
          "compare: python -m benchmarks.mediapipe_agreement")
    return 0


if __name__ == "__main__":
    sys.exit(main())
