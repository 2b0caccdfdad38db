"""Progress of long loops: a tqdm bar on a terminal, a plain line at most every few seconds in a log."""

import io

from stm import progress as progress_module
from stm.progress import INTERVAL, progress


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_off_a_terminal_a_plain_line_at_most_every_interval(monkeypatch):
    clock, log = Clock(), io.StringIO()
    monkeypatch.setattr(progress_module.time, "monotonic", clock)
    bar = progress(range(100), desc="frames", unit="frame", file=log)
    for index in bar:
        clock.now = index * 0.25  # 25 s in all
        if index == 50:
            bar.set_postfix(loss="0.123")
        if index == 80:
            bar.set_postfix_str("loss=0.123, seq=bear")
    text = log.getvalue()
    assert "\r" not in text and "\x1b" not in text
    lines = text.splitlines()
    assert len(lines) <= 25 / INTERVAL + 2  # never more often than every INTERVAL seconds, plus the last
    assert lines[-1].startswith("frames: 100/100 frame") and lines[-1].endswith("loss=0.123, seq=bear")
    assert all(line.startswith("frames: ") for line in lines)


def test_on_a_terminal_it_is_tqdm(monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    terminal = Terminal()
    for _ in progress(range(3), desc="x", file=terminal):
        pass
    assert "\r" in terminal.getvalue()  # tqdm redraws its bar in place

