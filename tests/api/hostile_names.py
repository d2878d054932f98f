"""A corpus of hostile names: what an attacker types where mailctl expects a name."""

from __future__ import annotations

_TRAVERSAL = [
    ".",
    "..",
    "...",
    "....",
    ". .",
    "../etc",
    "../../etc/passwd",
    "../../../../../../../../tmp/pwned",
    "a/../../b",
    "./a",
    "a/./b",
    "....//....//etc",
    "/etc/passwd",
    "/tmp",
    "//server/share",
    "\\..\\..\\windows",
    "..\\..\\boot.ini",
    "C:\\Windows\\System32",
    "c:",
    "a/b",
    "a\\b",
    "example.com/../../x",
    "~",
    "~root",
    "~/.ssh/authorized_keys",
    "$HOME/.bashrc",
]
_CONTROL = [
    "",
    "\x00",
    "a\x00b",
    "example.com\x00.evil",
    "\x00../../etc",
    "a\x01b",
    "a\x07b",
    "a\x08b",
    "\x1b[31mred",
    "a\x7fb",
    "a\tb",
    "a\nb",
    "a\rb",
    "a\r\nX-Injected: 1",
    "example.com\nevil.com",
    "a\x0bb",
    "a\x0cb",
    "a\u0085b",
    "a\u2028b",
    "a\u2029b",
    "\ud800",
    "a\udfffb",
    "\ufeffexample.com",
    "example\ufffe.com",
    "\uffff",
]
_CONFUSABLE = [
    "\u0435\u0445\u0430mple.com",  # Cyrillic e, kha, a
    "ex\u0430mple.com",
    "p\u0430ypal.com",
    "\u1d00dmin",
    "\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45.com",  # fullwidth
    "example\u3002com",  # ideographic full stop
    "example\uff0ecom",  # fullwidth full stop
    "example\uff61com",  # halfwidth ideographic full stop
    "\u24d4xample.com",  # circled e
    "e\u0301xample.com",  # combining acute
    "\u0391\u0392\u0393.com",  # Greek capitals
    "\u2160\u2167.com",  # Roman numerals
    "\u217b.com",
    "\u212a.com",  # Kelvin sign
    "\u0131nstagram.com",  # dotless i
    "\u0130stanbul.com",  # dotted capital I
    "admin\u200b",
    "ad\u200dmin",  # zero-width joiner
    "ad\u200cmin",  # zero-width non-joiner
    "a\u00adb.com",  # soft hyphen
    "\u200b.com",
    "\u2060example.com",  # word joiner
    "\u180eexample.com",  # Mongolian vowel separator
]
_IDNA = [
    "m\u00fcnchen.de",
    "xn--mnchen-3ya.de",
    "MÜNCHEN.DE",
    "fa\u00df.de",
    "\u00df",
    "xn--zca.de",
    "\u2603.com",
    "xn--n3h.com",
    "\U0001f4a9.la",
    "xn--ls8h.la",
    "\U0001f642.com",
    "xn--",
    "xn--.com",
    "xn--a.com",
    "xn--zz.com",
    "xn--80ak6aa92e.com",
    "xn--80ak6aa92e",
    "xn---.com",
    "xn--ab--c.com",
    "ab--cd.com",
    "\u0645\u062b\u0627\u0644.\u0625\u062e\u062a\u0628\u0627\u0631",  # Arabic
    "\u4f8b\u3048.\u30c6\u30b9\u30c8",  # Japanese
    "\u0915\u0916.\u092d\u093e\u0930\u0924",
    "a\u0300.com",
    "\u0300a.com",  # leading combining mark
    "\u05d0\u0031.com",  # RTL then digit (bidi rule)
    "1\u05d0.com",
    "\u0660\u0661.com",  # Arabic-Indic digits
    "\u06f0.com",
    "\U0001d7d9.com",  # mathematical double-struck one
    "\uff11\uff12\uff13.com",
]
_RTL = [
    "\u202eexample.com",
    "moc.elpmaxe\u202e",
    "example.com\u202e",
    "\u200fexample.com",
    "\u200eexample.com",
    "exa\u202emple.com",
    "\u2066example.com\u2069",
    "\u061cexample.com",
    "admin\u202e@example.com",
]
_PERCENT = [
    "%2e%2e",
    "%2e%2e%2fetc%2fpasswd",
    "..%2f..%2fetc",
    "%252e%252e",
    "a%00b.com",
    "%00",
    "%0d%0aSet-Cookie:x",
    "exa%6dple.com",
    "%c0%ae%c0%ae",
    "%e2%80%ae.com",
    "%",
    "%%",
    "%s%s%n",
    "%x%x",
    "+",
]
_SHELL_SQL = [
    "$(reboot)",
    "`id`",
    "a;rm -rf /",
    "a|b",
    "a&b",
    "a&&b",
    "a>b",
    "a<b",
    "a'b",
    'a"b',
    "'",
    '"',
    "*",
    "?",
    "!",
    "#",
    "$",
    "{a,b}",
    "a b",
    "' OR '1'='1",
    "a'; DROP TABLE virtual_domains;--",
    '"; DROP TABLE admins; --',
    "1; SELECT pg_sleep(10)",
    "a' UNION SELECT password FROM admins--",
    "%' --",
    "a\\'",
    "\\",
    "\\\\",
    "<script>alert(1)</script>",
    "{{7*7}}",
    "${jndi:ldap://127.0.0.1/x}",
    "{}",
    "[]",
    "null",
    "None",
    "undefined",
    "true",
    "0",
    "-1",
    "1e309",
    "NaN",
]
_WINDOWS = [
    "CON",
    "con",
    "con.com",
    "CON.example.com",
    "NUL",
    "nul.txt",
    "AUX",
    "aux.example.com",
    "PRN",
    "COM1",
    "com1.example.com",
    "LPT1",
    "lpt9.com",
    "CON.",
    "CLOCK$",
    "CONIN$",
    "a:b",
    "a:b.com",
    "file.txt::$DATA",
    "desktop.ini",
]
_DOTS_HYPHENS_SPACE = [
    "example.com.",
    "example.com..",
    ".example.com",
    "a..b.com",
    "example..com",
    "-example.com",
    "example-.com",
    "a.-b.com",
    "--help",
    "-rf",
    "-n",
    "-",
    "--",
    "_dmarc.example.com",
    "_",
    " ",
    "   ",
    " example.com",
    "example.com ",
    "\texample.com",
    "exa mple.com",
    "\u00a0example.com",
    "\u3000",
    "\u2003example.com",
    "example.com\u00a0",
]
_LENGTHS = [
    "a" * 63 + ".com",
    "a" * 64 + ".com",
    ("a" * 63 + ".") * 3 + "a" * 61 + ".com",
    ("a" * 63 + ".") * 4 + "com",
    "a." * 126 + "com",
    "a." * 127 + "com",
    "a" * 64,
    "a" * 65,
    "a" * 255,
    "a" * 1000,
    "a" * 20000,
    "\u00fc" * 60 + ".com",
    "\U0001f642" * 30 + ".com",
    "1" * 30,
    "9" * 5000,
]
_ADDRESSES = [
    "@",
    "@@",
    "a@",
    "@example.com",
    "a@b@c.com",
    "a@@example.com",
    '"a b"@example.com',
    "a.@example.com",
    ".a@example.com",
    "a..b@example.com",
    "a/b@example.com",
    "../x@example.com",
    "a%b@example.com",
    "a@[127.0.0.1]",
    "a@127.0.0.1",
    "a@localhost",
    "admin@example.com\nBcc: x@example.com",
    "a" * 65 + "@example.com",
    "a@" + "b" * 250 + ".com",
    "postmaster",
    "root",
    "\u00fcser@example.com",
    "user+tag@example.com",
    "USER@EXAMPLE.COM",
]
_HOSTS = [
    "localhost",
    "127.0.0.1",
    "[127.0.0.1]",
    "::1",
    "[::1]",
    "0",
    "0.0.0.0",  # noqa: S104 (a name sent, not an address bound)
    "169.254.169.254",
    "[fe80::1%25eth0]",
    "fe80::1%eth0",
    "2130706433",
    "0x7f000001",
    "017700000001",
    "127.1",
    "1.2.3.4.5",
    "256.0.0.1",
    "example.com:25",
    "http://example.com",
    "user:pass@example.com",
    "example.com#frag",
    "example.com?x=1",
]

HOSTILE_NAMES: list[str] = list(
    dict.fromkeys(
        _TRAVERSAL
        + _CONTROL
        + _CONFUSABLE
        + _IDNA
        + _RTL
        + _PERCENT
        + _SHELL_SQL
        + _WINDOWS
        + _DOTS_HYPHENS_SPACE
        + _LENGTHS
        + _ADDRESSES
        + _HOSTS
    )
)

# What a smaller run on the other databases sends: the names most likely to upset a driver
# (NUL, lone surrogates, long text, quotes) and a few of each kind.
SAMPLE: list[str] = list(
    dict.fromkeys(
        _CONTROL[:7]
        + _CONTROL[20:22]
        + _TRAVERSAL[1:3]
        + _CONFUSABLE[:1]
        + _IDNA[:2]
        + _RTL[:1]
        + _PERCENT[:1]
        + _SHELL_SQL[19:22]
        + _WINDOWS[:1]
        + _LENGTHS[-5:]
        + _ADDRESSES[5:7]
    )
)
