// Walking the documents in sops's order (FORMAT.md §4 "Computation", §5): depth first, map
// entries in file order, list items under their parent's path, aliases expanded, the top-level
// `sops` key left out, keys required to be strings in the go-yaml sense.
import { isAlias, isMap, isScalar, isSeq, visit, type Alias, type Node, type Pair, type Scalar } from 'yaml';
import { invalid, showPath } from './errors.js';
import { goValue, UnsupportedScalar } from './go-yaml-type.js';
import { topMap, type YamlDoc } from './yaml-doc.js';

export interface Leaf {
  /** Map keys only; list indexes are never part of the path (FORMAT.md §2 "AAD"). */
  readonly path: readonly string[];
  /** The scalar, after alias expansion; null for an absent value (`? key` with no value). */
  readonly node: Scalar | null;
}

/** Nodes visited across all documents, aliases counted each time they are expanded. */
const MAX_NODES = 1_000_000;
const MAX_DEPTH = 1_000;
/**
 * Characters of all keys and scalars visited, aliases counted each time they are expanded: each
 * is typed (and a value hashed for the MAC), and 4 MiB anchored under `*_unencrypted` and aliased
 * 1,000 times (no key needed) took 14 s. A file without aliases stays under its own size.
 */
const MAX_SCALAR_CHARS = 64 * 1024 * 1024;

type AliasResolver = (alias: Alias) => Node | undefined;

/**
 * An alias refers to the last node with its anchor before it, in document order (YAML 1.2
 * §3.2.2.2). Computed once per document: Alias.resolve would search the whole document each time.
 */
export function aliasResolver(doc: YamlDoc): AliasResolver {
  const targets = new Map<Alias, Node | undefined>();
  const latest = new Map<string, Node>();
  visit(doc, {
    Node(_key, node) {
      if (isAlias(node)) targets.set(node, latest.get(node.source));
      else if (node.anchor !== undefined) latest.set(node.anchor, node);
    },
  });
  return (alias) => targets.get(alias);
}

interface Context {
  readonly resolveAlias: AliasResolver;
  readonly origin: string;
}

interface WalkState extends Context {
  readonly onLeaf: (leaf: Leaf) => void;
  nodes: number;
  chars: number;
}

function resolve(node: unknown, state: Context, path: readonly string[]): unknown {
  if (!isAlias(node)) return node;
  const target = state.resolveAlias(node);
  if (target === undefined) throw invalid(state.origin, `has an alias without an anchor at ${showPath(path)}`);
  return target;
}

function keyOf(node: unknown, state: Context, path: readonly string[]): string {
  const key = resolve(node, state, path);
  if (!isScalar(key)) throw invalid(state.origin, `has a key that is not a string under ${showPath(path)}`);
  let v;
  try {
    v = goValue(key);
  } catch (e) {
    if (e instanceof UnsupportedScalar) throw invalid(state.origin, `has a key that is ${e.message} under ${showPath(path)}`);
    throw e;
  }
  // sops's walkBranch: "Tree contains a non-string key"; `1:` or `true:` are not string keys.
  if (v.kind !== 'str') throw invalid(state.origin, `has a key that is not a string (${v.kind}) under ${showPath(path)}`);
  return v.text;
}

function countChars(state: WalkState, chars: number): void {
  if ((state.chars += chars) > MAX_SCALAR_CHARS) throw invalid(state.origin, `has more than ${MAX_SCALAR_CHARS / 1024 / 1024} MiB of keys and values (after alias expansion)`);
}

function walkValue(node: unknown, path: readonly string[], state: WalkState, ancestors: Set<unknown>): void {
  const value = resolve(node, state, path);
  if (ancestors.has(value) || ancestors.size > MAX_DEPTH) throw invalid(state.origin, `nests too deeply (or recursively) at ${showPath(path)}`);
  if (++state.nodes > MAX_NODES) throw invalid(state.origin, `has more than ${MAX_NODES} nodes (after alias expansion)`);
  if (value === null || value === undefined || isScalar(value)) {
    if (isScalar(value)) countChars(state, String(value.value).length);
    state.onLeaf({ path, node: (value as Scalar | null | undefined) ?? null });
    return;
  }
  ancestors.add(value);
  if (isMap(value)) {
    const seen = new Set<string>();
    for (const pair of value.items) {
      const key = keyOf(pair.key, state, path);
      countChars(state, key.length);
      if (seen.has(key)) throw invalid(state.origin, `has a duplicate key ${showPath([...path, key])}`);
      seen.add(key);
      walkValue(pair.value, [...path, key], state, ancestors);
    }
  } else if (isSeq(value)) {
    for (const item of value.items) walkValue(item, path, state, ancestors);
  } else {
    throw invalid(state.origin, `has a value of an unknown kind at ${showPath(path)}`);
  }
  ancestors.delete(value);
}

/** Calls onLeaf for every scalar of every document in sops's walk order, skipping top-level `sops`. */
export function walkDocuments(docs: readonly YamlDoc[], origin: string, onLeaf: (leaf: Leaf) => void): void {
  let nodes = 0;
  let chars = 0;
  for (const doc of docs) {
    const state: WalkState = { resolveAlias: aliasResolver(doc), origin, onLeaf, nodes, chars };
    const seen = new Set<string>();
    for (const pair of topMap(doc).items) {
      const key = keyOf(pair.key, state, []);
      if (seen.has(key)) throw invalid(origin, `has a duplicate key ${showPath([key])}`);
      seen.add(key);
      if (key === 'sops') continue;
      walkValue(pair.value, [key], state, new Set());
    }
    nodes = state.nodes;
    chars = state.chars;
  }
}

/** The top-level entries of a document in file order, `sops` included, values resolved through aliases. */
export function topEntries(doc: YamlDoc, origin: string): Array<{ key: string; pair: Pair; value: Node | null }> {
  const state: Context = { resolveAlias: aliasResolver(doc), origin };
  return topMap(doc).items.map((pair) => {
    const key = keyOf(pair.key, state, []);
    return { key, pair, value: (resolve(pair.value, state, [key]) as Node | null | undefined) ?? null };
  });
}
