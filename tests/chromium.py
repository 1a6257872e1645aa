"""TEST HELPER: render an HTML page in headless Chromium (screenshot + DOM) and read the PNG's
colours, to check that a report really renders (CSS applied, SVG drawn)."""

from __future__ import annotations

import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"

needs_chromium = pytest.mark.skipif(
    not Path(CHROMIUM).exists() and shutil.which("chromium") is None,
    reason="chromium not installed (make chromium, or apt-get install chromium)")


def png_colours(path: Path, enough: int = 16,
                 want: tuple[int, int, int] | None = None) -> set[tuple[int, ...]]:
    """Distinct RGB colours of an 8-bit RGB/RGBA PNG, decoded row by row until `enough` are
    found (and the colour `want`, if given)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat = 8, b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    assert depth == 8 and ctype in (2, 6) and interlace == 0, "unexpected PNG format"
    bpp = 3 if ctype == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * bpp
    prev = bytearray(stride)
    colours: set[tuple[int, ...]] = set()
    for y in range(height):
        ftype = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if ftype == 1:
                line[i] = (line[i] + a) & 0xFF
            elif ftype == 2:
                line[i] = (line[i] + b) & 0xFF
            elif ftype == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif ftype == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[i] = (line[i] + pred) & 0xFF
        colours.update(tuple(line[i:i + 3]) for i in range(0, stride, bpp))
        if len(colours) >= enough and (want is None or want in colours):
            break
        prev = line
    return colours


def run_chromium(*args: str, user_dir: Path) -> subprocess.CompletedProcess:
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
           "--no-first-run", "--disable-background-networking", "--disable-component-update",
           "--disable-sync", f"--user-data-dir={user_dir}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def render(page: Path, tmp_path: Path, want: tuple[int, int, int]) -> tuple[Path, set[tuple[int, ...]], str]:
    """A 1280x2000 screenshot of `page` (its path, and its colours until `want` is seen) and the
    page's DOM after rendering."""
    png = tmp_path / f"{page.stem}.png"
    run_chromium(f"--screenshot={png}", "--window-size=1280,2000", page.as_uri(),
                 user_dir=tmp_path / "profile-shot")
    colours = png_colours(png, want=want) if png.is_file() else set()
    dom = run_chromium("--dump-dom", page.as_uri(), user_dir=tmp_path / "profile-dom").stdout
    return png, colours, dom
