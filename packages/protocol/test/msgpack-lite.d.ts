// msgpack-lite ships no types (and @types/msgpack-lite is not installed): the part the tests and the
// codec benchmark use.
declare module 'msgpack-lite' {
  export function encode(value: unknown): Buffer;
  export function decode(buf: Buffer | Uint8Array): unknown;
  const lite: { encode: typeof encode; decode: typeof decode };
  export default lite;
}
