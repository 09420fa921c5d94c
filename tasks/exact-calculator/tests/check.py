import subprocess

from checklib import check, main

CASES = [
    ("1/3 + 1/6", "1/2"), ("2 + 3 * 4", "14"), ("(2 + 3) * 4", "20"), ("7/2", "7/2"),
    ("-7/2", "-7/2"), ("7/-2", "-7/2"), ("-2^2", "-4"), ("(-2)^2", "4"), ("2^3^2", "512"),
    ("2^-2", "1/4"), ("(2/3)^-3", "27/8"), ("2*-3", "-6"), ("--5", "5"), ("+-+4", "-4"),
    ("10 - 4 - 3", "3"), ("64 / 4 / 2", "8"), ("2^100", str(2**100)),
    ("123456789012345678901234567890 * 10", "1234567890123456789012345678900"),
    ("  ( 1 + 2 )*( 3+4 ) ", "21"), ("6/4", "3/2"), ("0/5", "0"), ("-(1/2 - 1)", "1/2"),
    ("1/0", "error: division by zero"), ("0^-1", "error: division by zero"),
    ("5/(2-2)", "error: division by zero"), ("4^(1/2)", "error: non-integer exponent"),
    ("2^(3/1)", "8"), ("(1+2", "error: syntax"), ("1+2)", "error: syntax"), ("()", "error: syntax"),
    ("1.5 + 1", "error: syntax"), ("2 +", "error: syntax"), ("3 $ 4", "error: syntax"), ("2 3", "error: syntax"),
    ("(((7)))", "7"), ("1 - -1", "2"), ("2^2^-1", "error: non-integer exponent"), ("0^0", "1"),
]


def run(lines):
    res = subprocess.run(["python3", "/app/calc.py"], input="\n".join(lines) + "\n", capture_output=True,
                         text=True, timeout=30)
    return res.stdout.splitlines()


@check
def simple_addition():
    assert run(["1 + 1"]) == ["2"]


@check
def blank_lines_skipped():
    assert run(["1", "", "   ", "2"]) == ["1", "2"]


@check
def all_cases():
    got = run([c for c, _ in CASES])
    wrong = [(c, w, g) for (c, w), g in zip(CASES, got, strict=False) if w != g]
    assert len(got) == len(CASES), f"{len(got)} output lines for {len(CASES)} inputs"
    assert not wrong, "wrong: " + "; ".join(f"{c!r} -> {g!r} (want {w!r})" for c, w, g in wrong[:6])


@check
def errors_do_not_stop_processing():
    assert run(["1/0", "(", "3*3"]) == ["error: division by zero", "error: syntax", "9"]


if __name__ == "__main__":
    raise SystemExit(main())
