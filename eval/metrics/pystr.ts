// Python 3 `str` semantics the official (Python) scorers rely on, where JavaScript differs:
// `str.strip()` / `str.split()` use Python's whitespace set (str.isspace), not JS `\s`/trim; `s[i]`, `len(s)` and
// `s[:k]` count code points, not UTF-16 units. `str.lower()` is `toLowerCase()`: checked equal on every code point
// (final sigma included) except letters added to Unicode after Python 3.11's Unicode 14.

/**
 * Python's whitespace (chars with `str.isspace()`, CPython 3.11): \t \n \v \f \r, the four information separators
 * U+001C..U+001F, space, U+0085, U+00A0, U+1680, U+2000..U+200A, U+2028, U+2029, U+202F, U+205F, U+3000.
 * Differs from JS `\s`: JS lacks U+001C..U+001F and U+0085 and has U+FEFF, which Python does not.
 */
const PY_WHITESPACE = new Set<number>([
  0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x85, 0xa0, 0x1680,
  0x2000, 0x2001, 0x2002, 0x2003, 0x2004, 0x2005, 0x2006, 0x2007, 0x2008, 0x2009, 0x200a,
  0x2028, 0x2029, 0x202f, 0x205f, 0x3000,
]);

/** Whether one UTF-16 unit is Python whitespace (all of them are single BMP units). */
export function isPyWhitespace(unit: number): boolean {
  return PY_WHITESPACE.has(unit);
}

/** Python `s.strip()` (no argument). */
export function pyStrip(s: string): string {
  let a = 0;
  let b = s.length;
  while (a < b && PY_WHITESPACE.has(s.charCodeAt(a))) a++;
  while (b > a && PY_WHITESPACE.has(s.charCodeAt(b - 1))) b--;
  return s.slice(a, b);
}

/** Python `s.split()` (no argument): runs of Python whitespace separate words; no empty words. */
export function pySplit(s: string): string[] {
  const words: string[] = [];
  let start = -1;
  for (let i = 0; i < s.length; i++) {
    if (PY_WHITESPACE.has(s.charCodeAt(i))) {
      if (start >= 0) words.push(s.slice(start, i));
      start = -1;
    } else if (start < 0) {
      start = i;
    }
  }
  if (start >= 0) words.push(s.slice(start));
  return words;
}

/** Python `s.lower()`. */
export function pyLower(s: string): string {
  return s.toLowerCase();
}

/** Python's code points of `s` (what `s[i]` and `len(s)` index). */
export function codePoints(s: string): string[] {
  return Array.from(s);
}

/** Python `s.rstrip(chars)`. */
export function pyRstrip(s: string, chars: string): string {
  const set = new Set(codePoints(chars));
  const cps = codePoints(s);
  let b = cps.length;
  while (b > 0 && set.has(cps[b - 1]!)) b--;
  return cps.slice(0, b).join("");
}

/** Python `c.isupper()` for one code point: cased and equal to its upper case. */
export function pyIsUpper(c: string): boolean {
  return c !== c.toLowerCase() && c === c.toUpperCase();
}
