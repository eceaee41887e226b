"""A bar chart of today's articles per category, as /workspace/out/chart.png.

Runs inside the sandbox with the standard library only: the `news` server's
results are counted, and the PNG is written by hand (zlib for the pixel data,
struct for the chunks). Run it with `codemode exec --out DIR` and the chart
lands in DIR; through `codemode serve` the client shows it as an image.
"""

import os
import struct
import zlib

from mcp_tools import news

CATEGORIES = ["technology", "science", "business", "health", "sports", "world"]
COLORS = [(66, 133, 244), (52, 168, 83), (251, 188, 5), (234, 67, 53), (154, 80, 220), (0, 172, 193)]
WIDTH, HEIGHT = 360, 200
BAR, GAP, BOTTOM, TOP = 40, 16, 20, 30
# 3x5 digits, one row of three bits each, for the counts above the bars.
DIGITS = ["111101101101111", "010110010010111", "111001111100111", "111001111001111",
          "101101111001001", "111100111001111", "111100111101111", "111001001001001",
          "111101111101111", "111101111001111"]


def png(pixels):
    """PNG bytes of rows of (r, g, b) pixels."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    raw = b"".join(b"\x00" + bytes(c for pixel in row for c in pixel) for row in pixels)
    header = struct.pack(">IIBBBBB", len(pixels[0]), len(pixels), 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def draw_number(pixels, number, left, top, scale=3):
    for digit in str(number):
        glyph = DIGITS[int(digit)]
        for i, bit in enumerate(glyph):
            if bit == "1":
                x, y = left + (i % 3) * scale, top + (i // 3) * scale
                for dy in range(scale):
                    for dx in range(scale):
                        pixels[y + dy][x + dx] = (40, 40, 40)
        left += 4 * scale


def main():
    counts = [len(news.fetch_latest(category=c, limit=50)["articles"]) for c in CATEGORIES]
    pixels = [[(255, 255, 255)] * WIDTH for _ in range(HEIGHT)]
    most = max(counts) or 1
    for row in range(HEIGHT - BOTTOM, HEIGHT - BOTTOM + 2):
        pixels[row] = [(120, 120, 120)] * WIDTH
    for i, (count, color) in enumerate(zip(counts, COLORS)):
        left = GAP + i * (BAR + GAP)
        height = (HEIGHT - BOTTOM - TOP) * count // most
        for y in range(HEIGHT - BOTTOM - height, HEIGHT - BOTTOM):
            pixels[y][left:left + BAR] = [color] * BAR
        draw_number(pixels, count, left + BAR // 2 - 5, HEIGHT - BOTTOM - height - 20)
    os.makedirs("/workspace/out", exist_ok=True)
    with open("/workspace/out/chart.png", "wb") as f:
        f.write(png(pixels))
    for category, count in zip(CATEGORIES, counts):
        print(f"{category:<11} {count:>2} {'#' * count}")
    print("Wrote /workspace/out/chart.png")


main()
