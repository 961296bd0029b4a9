"""A moving test picture with a frame counter people can read and programs can read back.

The counter is drawn twice: as large seven-segment digits for people, and as a strip of
16 black/white blocks (one bit each) that survives lossy compression, for tests and
benchmarks that check every relayed frame arrived once and in order.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

CODE_BITS = 16
CODE_MASK = (1 << CODE_BITS) - 1
_SEGMENTS = {  # a b c d e f g
    "0": "1111110", "1": "0110000", "2": "1101101", "3": "1111001", "4": "0110011",
    "5": "1011011", "6": "1011111", "7": "1110000", "8": "1111111", "9": "1111011",
}
Image = npt.NDArray[np.uint8]


def _block(width: int) -> int:
    return max(8, width // (CODE_BITS * 2))


def draw_code(img: Image, value: int) -> None:
    """Write `value` as CODE_BITS blocks along the top-left edge of an RGB image."""
    size = _block(img.shape[1])
    for bit in range(CODE_BITS):
        on = (value >> (CODE_BITS - 1 - bit)) & 1
        img[0:size, bit * size:(bit + 1) * size] = 235 if on else 16


def read_code(luma: Image) -> int:
    """Read the block code back from a decoded picture's luma plane (2-D)."""
    size = _block(luma.shape[1])
    value = 0
    inset = size // 4
    for bit in range(CODE_BITS):
        cell = luma[inset:size - inset, bit * size + inset:(bit + 1) * size - inset]
        value = (value << 1) | int(cell.mean() > 128)
    return value


def _draw_digit(img: Image, x: int, y: int, h: int, digit: str, color: tuple[int, int, int]) -> None:
    w = h // 2
    t = max(2, h // 9)
    segs = _SEGMENTS[digit]
    boxes = [
        (x, y, w, t), (x + w - t, y, t, h // 2), (x + w - t, y + h // 2, t, h // 2),
        (x, y + h - t, w, t), (x, y + h // 2, t, h // 2), (x, y, t, h // 2),
        (x, y + h // 2 - t // 2, w, t),
    ]
    for on, (bx, by, bw, bh) in zip(segs, boxes, strict=True):
        if on == "1":
            img[by:by + bh, bx:bx + bw] = color


def draw_number(img: Image, x: int, y: int, h: int, number: int, digits: int = 5) -> None:
    text = str(number % 10**digits).rjust(digits, "0")
    for i, ch in enumerate(text):
        _draw_digit(img, x + i * (h * 2 // 3), y, h, ch, (255, 255, 255))


def make_frame(index: int, width: int, height: int, fps: int, grain: bool = True) -> Image:
    """RGB picture number `index`: colour bars, a moving box, a once-a-second flash
    (in step with the tone's beep), and the frame counter."""
    img = np.empty((height, width, 3), dtype=np.uint8)
    bars = np.array([[235, 235, 235], [235, 235, 16], [16, 235, 235], [16, 235, 16],
                     [235, 16, 235], [235, 16, 16], [16, 16, 235], [40, 40, 40]], dtype=np.uint8)
    bar_w = width // len(bars)
    shift = (index * 4) % width
    cols = ((np.arange(width) + shift) // max(bar_w, 1)) % len(bars)
    img[:] = bars[cols][np.newaxis, :, :]
    # a slow gradient at the bottom third keeps the encoder honest
    third = height * 2 // 3
    ramp = np.linspace(0, 255, width, dtype=np.float32)
    img[third:, :, :] = ((ramp + index * 3) % 256).astype(np.uint8)[np.newaxis, :, np.newaxis]
    if grain:  # film grain, new every frame, so the encoder spends a realistic bitrate
        noise = np.random.default_rng(index).integers(-24, 24, (height - third, width, 1),
                                                        dtype=np.int16)
        img[third:] = np.clip(img[third:].astype(np.int16) + noise, 0, 255).astype(np.uint8)
    box = height // 6
    bx = int((width - box) * (0.5 + 0.45 * np.sin(index / fps * 1.3)))
    by = int((third - box) * (0.5 + 0.4 * np.cos(index / fps * 0.9)))
    img[by:by + box, bx:bx + box] = (250, 120, 20)
    if index % fps < max(1, fps // 10):  # flash with the beep
        img[height - box:height, 0:box] = 255
    digit_h = height // 6
    panel_y = height // 2 - digit_h // 2
    img[panel_y - 8:panel_y + digit_h + 8, width // 2 - digit_h * 2:width // 2 + digit_h * 2] = 0
    draw_number(img, width // 2 - digit_h * 5 // 3, panel_y, digit_h, index)
    draw_code(img, index & CODE_MASK)
    return img


def tone(sample_index: int, count: int, rate: int = 48_000, hz: float = 440.0) -> npt.NDArray[np.int16]:
    """A beep of 100 ms at the start of every second, silence otherwise (mono int16)."""
    t = np.arange(sample_index, sample_index + count)
    wave = np.sin(2 * np.pi * hz * t / rate) * 8000
    beep = (t % rate) < rate // 10
    return (wave * beep).astype(np.int16)
