// HEAD is GET without the body (RFC 9110 §9.3.2): wherever GET is allowed, HEAD is too, and runs
// the same handler (same audit line, same use counted); node:http drops the body itself.

export function allowsMethod(methods: readonly string[], method: string | undefined): boolean {
  return methods.includes(method === 'HEAD' ? 'GET' : (method ?? ''));
}

/** The `Allow` header's value. */
export function allowHeader(methods: readonly string[]): string {
  return methods.flatMap((method) => (method === 'GET' ? ['GET', 'HEAD'] : [method])).join(', ');
}
