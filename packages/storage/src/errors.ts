/** Typed errors of the durable stores. Each names the path it is about. */

export class StorageError extends Error {
  constructor(
    message: string,
    readonly path: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'StorageError';
  }
}

/**
 * The log is damaged in a place a crash cannot explain (a bad record followed by records that
 * were written after it was made durable). The replica must not start on it: re-seed it (see
 * docs/operations.md, "Storage").
 */
export class StorageCorruptionError extends StorageError {
  constructor(
    readonly file: string,
    readonly offset: number,
    readonly reason: string,
  ) {
    super(
      `storage corruption in ${file} at offset ${offset}: ${reason}; the log cannot ` +
        `be trusted, re-seed this replica from its peers (docs/operations.md, "Storage")`,
      file,
    );
    this.name = 'StorageCorruptionError';
  }
}

/** ENOSPC/EDQUOT: the disk (or quota) holding the store is full. */
export class StorageFullError extends StorageError {
  constructor(path: string, detail: string, cause?: unknown) {
    super(`storage full: no space left for ${path} (${detail}); free space or give the store a bigger volume`, path, {
      cause,
    });
    this.name = 'StorageFullError';
  }
}

/** EACCES/EPERM/EROFS: the process may not create, open or write the path. */
export class StoragePermissionError extends StorageError {
  constructor(path: string, detail: string, cause?: unknown) {
    super(
      `storage permission denied on ${path} (${detail}); check the owner ` +
        `and mode of the data directory and that its volume is writable`,
      path,
      { cause },
    );
    this.name = 'StoragePermissionError';
  }
}

/** The store is closed, or failed earlier (an fsync error leaves the page cache in an unknown state). */
export class StorageClosedError extends StorageError {
  constructor(path: string, why: string) {
    super(`store at ${path} is not usable: ${why}`, path);
    this.name = 'StorageClosedError';
  }
}

/** Maps a node:fs error to a typed store error naming `path` (others are wrapped as StorageError). */
export function fsError(err: unknown, path: string, op: string): StorageError {
  if (err instanceof StorageError) return err;
  const e = err as NodeJS.ErrnoException;
  const code = e?.code ?? '';
  const detail = `${op}: ${code || (e?.message ?? String(err))}`;
  if (code === 'ENOSPC' || code === 'EDQUOT') return new StorageFullError(path, detail, err);
  if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') return new StoragePermissionError(path, detail, err);
  return new StorageError(`storage I/O error on ${path} (${detail})`, path, { cause: err });
}
