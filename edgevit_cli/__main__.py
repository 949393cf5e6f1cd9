import sys

from edgevit_cli.main import main

sys.exit(main())
