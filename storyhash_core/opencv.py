"""OpenCV as every feature computation uses it: the same floats on every x86 CPU.

OpenCV picks SIMD kernels for the CPU it runs on (SSE4, AVX2, AVX-512) and calls Intel IPP,
which does the same; those kernels round floats differently. DIS optical flow (the flow
tracker) gave different flow on an AMD EPYC (AVX2) than on the Xeon (AVX-512) of the
committed run, and differs on one machine between IPP's code paths (``OPENCV_IPP=sse42`` vs
``avx2``). Importing ``cv2`` from here turns both off, so OpenCV runs the kernels compiled
for the x86-64 baseline, the same on every CPU: IPP through ``OPENCV_IPP=disabled``, read
when cv2 loads and inherited by worker processes (``cv2.ipp.setUseIPP`` alone holds for the
calling thread only), and CPU dispatch through :func:`cv2.setUseOptimized`.
"""

import os

os.environ["OPENCV_IPP"] = "disabled"
os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")  # not "IPP was disabled" from every process

import cv2  # noqa: E402  (after OPENCV_IPP)


def baseline_kernels() -> None:
    """Turn CPU dispatch off, and IPP for the calling thread: what a thread computing features
    calls first, for processes where cv2 was imported before this module (``OPENCV_IPP``
    then came too late)."""
    cv2.setUseOptimized(False)
    cv2.ipp.setUseIPP(False)


baseline_kernels()

__all__ = ["baseline_kernels", "cv2"]
