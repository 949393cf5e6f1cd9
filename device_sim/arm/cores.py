"""ARM cores the target runner can emulate: the qemu CPU model that gives XNNPACK the core's ISA
features, and the /proc/cpuinfo the guest sees (its `CPU part` selects XNNPACK's kernels tuned for
that microarchitecture; its `Features` must match the qemu model or the run dies on an illegal
instruction). qemu 7.2 has no cortex-a55 model: the A55 (ARMv8.2 with dot product and fp16, like the
A76) runs on the cortex-a76 model with the A55's part number."""

from __future__ import annotations

from dataclasses import dataclass

from contract.errors import UserError

__all__ = ["Core", "CORES", "get_core", "cpuinfo"]

_V8_0 = "fp asimd evtstrm aes pmull sha1 sha2 crc32 cpuid"
_V8_0_NO_CRYPTO = "fp asimd evtstrm crc32 cpuid"   # the Raspberry Pi 4's BCM2711
_V8_2_DOT = "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp"


@dataclass(frozen=True)
class Core:
    name: str
    qemu_cpu: str         # qemu-aarch64 -cpu
    part: str             # MIDR part number in /proc/cpuinfo
    features: str         # /proc/cpuinfo Features: what the ISA offers
    note: str
    kind: str = "in-order"   # "in-order" or "out-of-order": which CPI the latency projection uses
    variant: int = 0      # MIDR variant and revision: rXpY. Shipping A55s are r1/r2; XNNPACK's CPU detection
    revision: int = 0     # treats an r0 A55 differently, so the revision is part of the model

    @property
    def dot_product(self) -> bool:
        return "asimddp" in self.features.split()


CORES = {c.name: c for c in (
    Core("cortex-a53", "cortex-a53", "0xd03", _V8_0, "ARMv8.0 in-order; no int8 dot product (smartwatch class)",
         variant=0, revision=4),
    Core("cortex-a55", "cortex-a76", "0xd05", _V8_2_DOT,
         "ARMv8.2 in-order with int8 dot product (AR-glasses class); ISA from qemu's cortex-a76 model",
         variant=2, revision=0),
    Core("cortex-a72", "cortex-a72", "0xd08", _V8_0_NO_CRYPTO,
         "ARMv8.0 out-of-order, no dot product (Raspberry Pi 4: calibrates the projection)", kind="out-of-order",
         variant=0, revision=3),
    Core("cortex-a76", "cortex-a76", "0xd0b", _V8_2_DOT,
         "ARMv8.2 out-of-order big core with dot product (phone class)", kind="out-of-order", variant=4,
         revision=0),
)}


def get_core(name: str) -> Core:
    try:
        return CORES[name]
    except KeyError:
        raise UserError(f"unknown core {name!r}; choose one of {', '.join(CORES)}") from None


def cpuinfo(core: Core, cores: int = 1) -> str:
    block = (f"BogoMIPS\t: 48.00\nFeatures\t: {core.features}\nCPU implementer\t: 0x41\nCPU architecture: 8\n"
             f"CPU variant\t: {core.variant:#x}\nCPU part\t: {core.part}\nCPU revision\t: {core.revision}\n")
    return "\n".join(f"processor\t: {i}\n{block}" for i in range(cores))
