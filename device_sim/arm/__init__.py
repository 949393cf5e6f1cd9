"""The target: run a .tflite on the wearable's instruction set (aarch64 under qemu-user, built by
`make arm-setup`), count the instructions one inference executes on a named core, and check that
its outputs agree with the host's. No new dependency on the host side: subprocess, numpy and the
contract."""
