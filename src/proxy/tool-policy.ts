/**
 * Tool-level authorization (docs/authorization.md, "Tools, prompts and resources"): the `tools`,
 * `prompts` and `resources` rules of a service, compiled once at start-up (globs to RegExps, identity keys
 * to a policy object), and the decision for one item and one user. Identity matching is the service
 * policy's own (`checkPolicy`, src/kernel/policy.ts): verified addresses only for `emails` /
 * `email_domains`, any one key admits.
 */
import { compileGlob, globLiteral, isGlob } from '../config/rules.js';
import type { AccessRuleConfig, PolicyConfig, ServiceConfig } from '../config/schema.js';
import { checkPolicy, type PolicyUser } from '../kernel/policy.js';

/** The MCP primitive a rule set governs. */
export type ItemKind = 'tool' | 'prompt' | 'resource';

interface CompiledRule {
  /** The rule's key as written in the configuration (named in refusals, audit lines and metrics). */
  key: string;
  deny: boolean;
  /** The identity keys of the rule, or undefined when it has none (then every user the service admits). */
  policy: PolicyConfig | undefined;
  scopes: readonly string[];
}

interface CompiledRuleSet {
  kind: ItemKind;
  allowByDefault: boolean;
  literal: Map<string, CompiledRule>;
  globs: Array<{ re: RegExp; rule: CompiledRule }>;
}

/** The user a decision is made for: the verified token's identity and scopes (absent on a public service). */
export interface ToolUser extends PolicyUser {
  scopes: readonly string[];
}

export type ToolDecision =
  | { decision: 'allow'; rule: string }
  | { decision: 'deny'; rule: string; reason: string }
  | { decision: 'insufficient_scope'; rule: string; missing: readonly string[] };

/** The rule key used for items no rule names (metric label, audit line). */
export const DEFAULT_RULE = '(default)';

/** The methods decided before the backend sees them, and where their item's name is. */
export const CALL_METHODS: ReadonlyMap<string, { kind: ItemKind; param: 'name' | 'uri' }> = new Map([
  ['tools/call', { kind: 'tool', param: 'name' }],
  ['prompts/get', { kind: 'prompt', param: 'name' }],
  ['resources/read', { kind: 'resource', param: 'uri' }],
]);

/** The list methods whose results are filtered, and the result field holding the items. */
export const LIST_METHODS: ReadonlyMap<string, { kind: ItemKind; field: 'tools' | 'prompts' | 'resources'; key: 'name' | 'uri' }> = new Map(
  [
    ['tools/list', { kind: 'tool', field: 'tools', key: 'name' }],
    ['prompts/list', { kind: 'prompt', field: 'prompts', key: 'name' }],
    ['resources/list', { kind: 'resource', field: 'resources', key: 'uri' }],
  ],
);

function compileSet(kind: ItemKind, cfg: NonNullable<ServiceConfig['tools']>): CompiledRuleSet {
  const set: CompiledRuleSet = { kind, allowByDefault: cfg.default !== 'deny', literal: new Map(), globs: [] };
  for (const [key, r] of Object.entries(cfg.rules)) {
    const rule = compileRule(key, r);
    if (isGlob(key)) set.globs.push({ re: compileGlob(key), rule });
    else if (!set.literal.has(globLiteral(key))) set.literal.set(globLiteral(key), rule);
  }
  return set;
}

function compileRule(key: string, r: AccessRuleConfig): CompiledRule {
  const { users, emails, email_domains, groups } = r;
  const hasIdentity = Boolean(users?.length || emails?.length || email_domains?.length || groups?.length);
  return {
    key,
    deny: r.deny === true,
    policy: hasIdentity ? { users, emails, email_domains, groups } : undefined,
    scopes: r.scopes ?? [],
  };
}

/** A service's compiled rules; built only for services that have `tools`, `prompts` or `resources`. */
export class ToolPolicy {
  readonly #sets: Record<ItemKind, CompiledRuleSet | undefined>;

  private constructor(sets: Record<ItemKind, CompiledRuleSet | undefined>) {
    this.#sets = sets;
  }

  /** Undefined when the service has no rules at all: its bodies are never read (docs/proxy.md). */
  static compile(cfg: ServiceConfig): ToolPolicy | undefined {
    if (!cfg.tools && !cfg.prompts && !cfg.resources) return undefined;
    return new ToolPolicy({
      tool: cfg.tools ? compileSet('tool', cfg.tools) : undefined,
      prompt: cfg.prompts ? compileSet('prompt', cfg.prompts) : undefined,
      resource: cfg.resources ? compileSet('resource', cfg.resources) : undefined,
    });
  }

  /** Whether items of this kind are governed (a service may have rules for tools only). */
  governs(kind: ItemKind): boolean {
    return this.#sets[kind] !== undefined;
  }

  /**
   * The decision for one item. Order: `deny`, then the identity keys (a user the rule does not admit is
   * refused, never asked to step up for a tool they could not use anyway), then `scopes`.
   */
  decide(kind: ItemKind, name: string, user: ToolUser | undefined): ToolDecision {
    const set = this.#sets[kind];
    if (set === undefined) return ALLOW_DEFAULT;
    const rule = set.literal.get(name) ?? set.globs.find((g) => g.re.test(name))?.rule;
    if (rule === undefined) {
      return set.allowByDefault
        ? ALLOW_DEFAULT
        : { decision: 'deny', rule: DEFAULT_RULE, reason: `${kind}s not named by a rule are denied on this service (default: deny)` };
    }
    if (rule.deny) return { decision: 'deny', rule: rule.key, reason: `${kind} rule '${rule.key}' denies it (deny: true)` };
    if (rule.policy !== undefined) {
      const verdict = user ? checkPolicy(rule.policy, user, `${kind} rule '${rule.key}'`) : undefined;
      if (!verdict?.allowed)
        return { decision: 'deny', rule: rule.key, reason: verdict?.reason ?? `${kind} rule '${rule.key}' admits signed-in users only` };
    }
    if (rule.scopes.length > 0) {
      const held = user?.scopes ?? [];
      const missing = rule.scopes.filter((s) => !held.includes(s));
      if (missing.length > 0) return { decision: 'insufficient_scope', rule: rule.key, missing };
    }
    return { decision: 'allow', rule: rule.key };
  }

  /**
   * A parsed JSON-RPC answer to `method`, with its list filtered to the visible items (for a bridge that
   * holds answers as objects, src/stdio; HTTP backends go through the byte-level ListRewriter). Returns
   * the same object when nothing governed is in it.
   */
  filterAnswer(method: string, answer: Record<string, unknown>, user: ToolUser | undefined): Record<string, unknown> {
    const spec = LIST_METHODS.get(method);
    const result = answer.result as Record<string, unknown> | undefined;
    const items = spec && result !== null && typeof result === 'object' ? result[spec.field] : undefined;
    if (!spec || !Array.isArray(items)) return answer;
    const kept = items.filter((item: unknown) => {
      const name = item !== null && typeof item === 'object' ? (item as Record<string, unknown>)[spec.key] : undefined;
      return typeof name === 'string' && this.visible(spec.kind, name, user);
    });
    return kept.length === items.length ? answer : { ...answer, result: { ...result, [spec.field]: kept } };
  }

  /** Whether a listed item stays in the list: everything but policy refusals (scope refusals can be stepped up). */
  visible(kind: ItemKind, name: string, user: ToolUser | undefined): boolean {
    return this.decide(kind, name, user).decision !== 'deny';
  }
}

const ALLOW_DEFAULT: ToolDecision = Object.freeze({ decision: 'allow', rule: DEFAULT_RULE });
