// HEAD is GET without the body (RFC 9110 §9.3.2): wherever GET is allowed, HEAD is too, and runs
// the same handler (same audit line, same use counted); node:http drops the body itself.
import { HttpError } from './http-error.js';

export function allowsMethod(methods: readonly string[], method: string | undefined): boolean {
  return methods.includes(handlerMethod(method ?? ''));
}

/** The method whose handler (and audit event) serves `method`: GET's for HEAD. */
export function handlerMethod(method: string): string {
  return method === 'HEAD' ? 'GET' : method;
}

/** The `Allow` header's value. */
export function allowHeader(methods: readonly string[]): string {
  return methods.flatMap((method) => (method === 'GET' ? ['GET', 'HEAD'] : [method])).join(', ');
}

/** A method the path does not allow: a JSON error like any other, with the `Allow` the RFC asks for. */
export function methodNotAllowed(methods: readonly string[]): HttpError {
  const allow = allowHeader(methods);
  return new HttpError(405, 'RWS_METHOD_NOT_ALLOWED', `use ${allow}`, { allow });
}
