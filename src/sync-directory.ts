// A rename is durable only once its directory is: until then a power loss can leave the file
// under its temporary name, or not at all, though its own data was fsynced.
import { constants, promises as fs } from 'node:fs';

export async function syncDirectory(dir: string): Promise<void> {
  const handle = await fs.open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
