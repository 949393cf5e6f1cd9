"""`python -m device_sim ...` is `edgevit simulate ...`: the device's way in when only device_sim,
contract and edgevit_cli were copied (every one of them runs without torch or tensorflow)."""

import sys

from edgevit_cli.main import main

sys.exit(main(["simulate", *sys.argv[1:]], exiting=True))
