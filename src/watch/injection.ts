// How each child of a watch gets its secrets, and how a child that stays gets new ones. Env: the
// variables, fixed at its start. File: a fresh private file per child; with a reload signal the
// same path gets new content by an exclusive temp file renamed over it. Fd: a fresh unlinked file
// per child; with a reload signal the same inode is rewritten (the child's fd 3 cannot change).
// A restart makes the new child's file before it stops the old child; the old file is removed
// once its group is gone, and every file on every way out (Cleanup).
import type { Cleanup } from '../process/cleanup.js';
import type { FileFormat } from '../inject/file-format.js';
import type { Placement, SecretsFile } from '../inject/secrets-file.js';
import type { RunIo, RunPlan } from '../run.js';
import type { Secrets } from '../sources/source.js';
import { refuseOversizedVariables } from '../inject/env-limits.js';

const FILE_NAMES: Record<FileFormat, string> = { dotenv: 'secrets.env', shell: 'secrets.sh', json: 'secrets.json' };

export interface Injected {
  variables: Map<string, string>;
  fd: number | undefined;
  /** The file made for it (file and fd injection). */
  file?: SecretsFile | undefined;
}

export class WatchInjection {
  private file: SecretsFile | undefined;
  private warnedNotRam = false;

  constructor(
    private readonly plan: RunPlan,
    private readonly placement: Placement | undefined,
    private readonly cleanup: Cleanup,
    private readonly io: RunIo,
    /** Keep a way to rewrite an fd-injected file (only --on-change signal:SIG needs one). */
    private readonly rewritable: boolean,
    private readonly files: typeof SecretsFile,
  ) {}

  /**
   * For a new child, made while the running child and its file stand: a runtime directory that is
   * full (ENOSPC) or no longer private fails the refresh, and the app runs on. Nothing is left of
   * a file that could not be made whole.
   */
  async prepare(secrets: Secrets): Promise<Injected> {
    if (this.plan.injectAs === 'env') return { variables: secrets, fd: undefined };
    const placement = this.placement!;
    if (!placement.ramBacked && !this.warnedNotRam) {
      this.warnedNotRam = true;
      this.io.log.warn('RWS_NOT_RAM_BACKED', `no RAM-backed directory is usable; the secrets file goes to ${placement.base} (set XDG_RUNTIME_DIR or mount /dev/shm)`);
    }
    const content = await this.serialize(secrets);
    let file: SecretsFile | undefined;
    try {
      file = this.files.create(placement.base, FILE_NAMES[this.plan.fileFormat], content, (created) => {
        file = created;
        this.cleanup.add(created);
      });
      if (this.plan.user) await file.handTo(this.plan.user.uid, this.plan.user.gid);
      if (this.plan.injectAs === 'file') return { variables: new Map([[this.plan.fileVar, file.path]]), fd: undefined, file };
      const fd = await file.detach(this.rewritable);
      return { variables: new Map([[this.plan.fileVar, '/dev/fd/3']]), fd, file };
    } catch (error) {
      if (file) await this.drop(file).catch(() => undefined);
      throw error;
    }
  }

  /** The new child starts with `injected`: the previous child's file (its group is gone) is removed. */
  async adopt(injected: Injected): Promise<void> {
    await this.release();
    this.file = injected.file;
  }

  /** Refuses secrets the file format or the environment cannot carry, before anything is stopped for them. */
  async check(secrets: Secrets): Promise<void> {
    if (this.plan.injectAs === 'env') refuseOversizedVariables(secrets);
    else await this.serialize(secrets);
  }

  /** New content for the running child's file (file or fd injection only). */
  async rewrite(secrets: Secrets): Promise<void> {
    await this.file!.rewrite(await this.serialize(secrets));
  }

  async release(): Promise<void> {
    const file = this.file;
    this.file = undefined;
    if (file) await this.drop(file);
  }

  private async drop(file: SecretsFile): Promise<void> {
    await file.dispose();
    // Only once removed: a file whose removal failed stays for the exit path to try again.
    this.cleanup.forget(file);
  }

  private async serialize(secrets: Secrets): Promise<string> {
    const { serialize } = await import('../inject/file-format.js');
    return serialize(secrets, this.plan.fileFormat);
  }
}
