#!/bin/bash
set -euo pipefail
cat > /app/calc.py <<'PY'
import re
import sys
from fractions import Fraction

TOKEN = re.compile(r"\s*(?:(\d+)|(.))")


class Syntax(Exception):
    pass


class Failure(Exception):
    pass


def tokenize(text):
    tokens, pos = [], 0
    text = text.rstrip()
    while pos < len(text):
        m = TOKEN.match(text, pos)
        if m.group(1):
            tokens.append(int(m.group(1)))
        elif m.group(2) in "+-*/^()":
            tokens.append(m.group(2))
        else:
            raise Syntax
        pos = m.end()
    return tokens


class Parser:
    def __init__(self, tokens):
        self.tokens, self.i = tokens, 0

    def peek(self):
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self):
        tok = self.peek()
        if tok is None:
            raise Syntax
        self.i += 1
        return tok

    def expr(self):
        value = self.term()
        while self.peek() in ("+", "-"):
            op, rhs = self.take(), self.term()
            value = value + rhs if op == "+" else value - rhs
        return value

    def term(self):
        value = self.unary()
        while self.peek() in ("*", "/"):
            op, rhs = self.take(), self.unary()
            if op == "*":
                value *= rhs
            elif rhs == 0:
                raise Failure("division by zero")
            else:
                value /= rhs
        return value

    def unary(self):
        if self.peek() in ("+", "-"):
            op = self.take()
            value = self.unary()
            return -value if op == "-" else value
        return self.power()

    def power(self):
        base = self.atom()
        if self.peek() == "^":
            self.take()
            exp = self.unary()  # right-associative, allows 2^-1
            if exp.denominator != 1:
                raise Failure("non-integer exponent")
            if base == 0 and exp < 0:
                raise Failure("division by zero")
            return base ** int(exp)
        return base

    def atom(self):
        tok = self.take()
        if isinstance(tok, int):
            return Fraction(tok)
        if tok == "(":
            value = self.expr()
            if self.take() != ")":
                raise Syntax
            return value
        raise Syntax


def evaluate(line):
    parser = Parser(tokenize(line))
    value = parser.expr()
    if parser.peek() is not None:
        raise Syntax
    return value


def main():
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            value = evaluate(line)
        except Syntax:
            print("error: syntax")
        except Failure as exc:
            print(f"error: {exc}")
        else:
            print(value.numerator if value.denominator == 1 else f"{value.numerator}/{value.denominator}")


main()
PY
