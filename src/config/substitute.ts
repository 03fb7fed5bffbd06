/**
 * `${VAR}` / `${VAR:-default}` substitution, applied after YAML parsing to string values only (never to
 * keys, never inside comments), the way Docker Compose does it. `$${` is an escape for a literal `${`.
 *
 * Shell semantics for `:-`: the default is used when VAR is unset *or empty* (the seed used it only when
 * unset; POSIX shell parameter expansion `${parameter:-word}`).
 */

export interface SubstitutionProblem {
  path: (string | number)[];
  variable: string;
  message: string;
}

const PATTERN = /\$\$\{|\$\{([^}]*)\}/g;
const VAR_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

export function substituteString(
  input: string,
  env: NodeJS.ProcessEnv,
  path: (string | number)[],
  problems: SubstitutionProblem[],
): string {
  if (!input.includes('$')) return input;
  return input.replace(PATTERN, (match, expr: string | undefined) => {
    if (match === '$${') return '${';
    const body = expr ?? '';
    const sep = body.indexOf(':-');
    const name = sep === -1 ? body : body.slice(0, sep);
    if (!VAR_NAME.test(name)) {
      problems.push({ path, variable: name, message: `invalid variable reference '${match}': use \${NAME} or \${NAME:-default}` });
      return '';
    }
    const value = env[name];
    if (sep !== -1) return value === undefined || value === '' ? body.slice(sep + 2) : value;
    if (value === undefined) {
      problems.push({
        path,
        variable: name,
        message: `environment variable '${name}' is required but not set. Set ${name}, or write \${${name}:-default} for an optional value`,
      });
      return '';
    }
    return value;
  });
}

/** Returns a deep copy of `value` with every string substituted. */
export function substituteDeep(
  value: unknown,
  env: NodeJS.ProcessEnv,
  problems: SubstitutionProblem[],
  path: (string | number)[] = [],
): unknown {
  if (typeof value === 'string') return substituteString(value, env, path, problems);
  if (Array.isArray(value)) return value.map((v, i) => substituteDeep(v, env, problems, [...path, i]));
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = substituteDeep(v, env, problems, [...path, k]);
    return out;
  }
  return value;
}
