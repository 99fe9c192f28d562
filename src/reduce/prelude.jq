# evscope's jq prelude: the filters defined in jq rather than natively.
#
# Written for evscope; behaviour follows jq 1.6 (the reference), with the
# natives from reduce/natives.rs (`_range`, `_limit`, `_match_impl`, ...).
# A definition can only call definitions above it or natives.

def empty: [][] as $x | .;
def error: error_empty as $x | .;
def error(msg): (msg | error_empty) as $x | .;

def select(f): if f then . else empty end;
def values: select(. != null);
def nulls: select(. == null);
def booleans: select(type == "boolean");
def numbers: select(type == "number");
def strings: select(type == "string");
def arrays: select(type == "array");
def objects: select(type == "object");
def iterables: select(type | . == "array" or . == "object");
def scalars: select(type | . != "array" and . != "object");
def finites: select(isinfinite or isnan | not);
def normals: select(isnormal);

def recurse(f): def r: ., (f | r); r;
def recurse(f; cond): def r: ., (f | select(cond) | r); r;
def recurse: recurse(.[]?);
def recurse_down: recurse;

# jq 1.6: range/2 wants numbers; a zero step yields nothing.
def range($from; $upto):
  if ($from | type) == "number" and ($upto | type) == "number"
  then _range($from; $upto; 1)
  else error("Range bounds must be numeric") end;
def range($upto): range(0; $upto);
def range($from; $upto; $by): if $by > 0 or $by < 0 then _range($from; $upto; $by) else empty end;

def while(cond; update): def w: if cond then ., (update | w) else empty end; w;
def until(cond; update): def u: if cond then . else (update | u) end; u;
# jq 1.6 re-applies `f` to the original input (its documented `.*10`
# chain does not happen in 1.6).
def repeat(f): def r: f, r; r;

# jq 1.6: a negative count passes everything, zero still yields the first.
def limit($n; f): if $n > 0 then _limit($n; f) elif $n == 0 then _limit(1; f) else f end;
def first: .[0];
def last(f): reduce f as $x (null; $x);
def last: .[-1];
def nth($n): .[$n];
def nth($n; f): if $n < 0 then error("nth doesn't support negative indices") else last(limit($n + 1; f)) end;
def isempty(g): first((g | false), true);

def map(f): [.[] | f];
def map_values(f): .[] |= f;
def with_entries(f): to_entries | map(f) | from_entries;

def getpath($p): reduce $p[] as $k (.; .[$k]);
def setpath($p; $v): getpath($p) |= $v;
def del(f): delpaths([path(f)]);
def paths: path(..) | select(length > 0);
def paths(node_filter): . as $in | paths | select(. as $p | $in | getpath($p) | node_filter);
def leaf_paths: paths(scalars);

def any: reduce .[] as $x (false; . or $x);
def all: reduce .[] as $x (true; . and $x);
def any(f): reduce (.[] | f) as $x (false; . or $x);
def all(f): reduce (.[] | f) as $x (true; . and $x);
def any(g; cond): isempty(first(g | cond | select(.))) | not;
def all(g; cond): isempty(first(g | cond | select(. | not)));
def IN(s): any(s == .; .);
def IN(src; s): any(src == s; .);
def INDEX(stream; idx_expr): reduce stream as $row ({}; .[$row | idx_expr | tostring] |= $row);
def INDEX(idx_expr): INDEX(.[]; idx_expr);

def in(xs): . as $x | xs | has($x);
def inside(xs): . as $x | xs | contains($x);
def index($i): indices($i) | .[0];
def rindex($i): indices($i) | .[-1:][0];

def min_by(f): [min_by_or_empty(f)] | .[0];
def max_by(f): [max_by_or_empty(f)] | .[0];
def min: min_by(.);
def max: max_by(.);
def unique_by(f): [group_by(f)[] | .[0]];
def unique: unique_by(.);

def combinations:
  if length == 0 then []
  else .[0][] as $x | (.[1:] | combinations) as $rest | [$x] + $rest end;
def combinations($n): . as $dot | [range($n)] | map($dot) | combinations;
def walk(f): def w: if type == "object" then map_values(w) elif type == "array" then map(w) else . end | f; w;
def transpose: (map(length) | max // 0) as $n | [range($n) as $j | map(.[$j])];
def ascii: [.] | implode;

def fromstream(f): {x: null, e: false} as $init
  | foreach f as $i ($init;
      (if .e then $init else . end)
      | if ($i | length) == 2
        then .e = (($i[0] | length) == 0) | .x |= setpath($i[0]; $i[1])
        else .e = (($i[0] | length) == 1) end;
      if .e then .x else empty end);
def truncate_stream(stream): . as $depth | null | stream
  | if (.[0] | length) > $depth then .[0] |= .[$depth:] else empty end;

# Regular expressions, on the native `_match_impl($re; $flags; $test)`.
def match($re; $flags): _match_impl($re; $flags; false)[];
def match($re): if ($re | type) == "array" then match($re[0]; $re[1]) else match($re; null) end;
def test($re; $flags): _match_impl($re; $flags; true);
def test($re): if ($re | type) == "array" then test($re[0]; $re[1]) else test($re; null) end;
def _capture_object: reduce (.captures[] | select(.name != null)) as $c ({}; . + {($c.name): $c.string});
def capture($re; $flags): match($re; $flags) | _capture_object;
def capture($re): if ($re | type) == "array" then capture($re[0]; $re[1]) else capture($re; null) end;
def scan($re; $flags): match($re; "g" + $flags) | if (.captures | length) > 0 then [.captures[].string] else .string end;
def scan($re): scan($re; null);
def split($re; $flags): . as $s
  | reduce (match($re; "g" + $flags) | [.offset, .offset + .length]) as [$from, $to]
      ({parts: [], at: 0}; .parts += [$s[.at:$from]] | .at = $to)
  | .parts + [$s[.at:]];
def splits($re; $flags): split($re; $flags)[];
def splits($re): splits($re; null);
def sub($re; str; $flags): . as $in
  | reduce match($re; $flags) as $m ({out: "", at: 0};
      ($m | _capture_object | str) as $new
      | .out += $in[.at:$m.offset] + $new | .at = $m.offset + $m.length)
  | .out + $in[.at:];
def sub($re; str): sub($re; str; "");
def gsub($re; str; $flags): sub($re; str; $flags + "g");
def gsub($re; str): sub($re; str; "g");

# Dates (UTC only: a reducer does not see the machine's time zone).
def todate: strftime("%Y-%m-%dT%H:%M:%SZ");
def fromdate: fromdateiso8601;
def date: todate;
def dateadd(u; n): . + n;
def datesub(u; n): . - n;
def localtime: gmtime;
def strflocaltime($fmt): strftime($fmt);

def pow10: exp10;
def gamma: lgamma;

# No terminal output and no process exit from a reducer: `debug` and
# `stderr` pass their input through silently, `halt` and `halt_error`
# raise an ordinary error instead of exiting.
def debug: .;
def debug(msg): .;
def stderr: .;
def halt: error("halt is not supported in evscope reducers");
def halt_error($code): error(.);
def halt_error: halt_error(5);
