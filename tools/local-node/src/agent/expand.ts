/**
 * Kubernetes' `$(VAR)` expansion of env values, command and args (k8s.io/kubernetes third_party expansion):
 * `$(NAME)` becomes the variable's value when it is defined and stays as written when it is not, `$$` is an
 * escaped `$` (so `$$(NAME)` is the literal `$(NAME)`), and any other `$` is kept.
 */

/** Expands `$(VAR)` references in `input` from `lookup` (undefined: the reference is kept as written). */
export function expand(input: string, lookup: (name: string) => string | undefined): string {
  let out = '';
  let i = 0;
  while (i < input.length) {
    const c = input[i]!;
    if (c !== '$' || i + 1 >= input.length) {
      out += c;
      i++;
      continue;
    }
    const next = input[i + 1]!;
    if (next === '$') {
      out += '$';
      i += 2;
      continue;
    }
    if (next === '(') {
      const close = input.indexOf(')', i + 2);
      if (close < 0) {
        // An unclosed reference is kept whole.
        out += input.slice(i);
        break;
      }
      const name = input.slice(i + 2, close);
      const v = name ? lookup(name) : undefined;
      out += v ?? input.slice(i, close + 1);
      i = close + 1;
      continue;
    }
    out += c;
    i++;
  }
  return out;
}

/** Expands every string of a list against a map of variables. */
export const expandAll = (list: readonly string[], vars: Readonly<Record<string, string>>): string[] => list.map((s) => expand(s, (n) => (Object.hasOwn(vars, n) ? vars[n] : undefined)));
