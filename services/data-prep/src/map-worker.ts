/** A worker thread of the map step: `RecordWork` on the batches `WorkPool` sends, answered in kind. */
import { parentPort, workerData } from 'node:worker_threads';
import { RecordWork, type WorkConfig, type WorkInput } from './map-work.ts';

const port = parentPort!;
try {
  const work = await RecordWork.create(workerData as WorkConfig);
  port.on('message', (m: { id: number; records: WorkInput[] }) => {
    try {
      port.postMessage({ id: m.id, outputs: m.records.map((r) => work.process(r)) });
    } catch (e) {
      port.postMessage({ id: m.id, error: (e as Error).stack ?? String(e) });
    }
  });
  port.postMessage({ ready: true });
} catch (e) {
  port.postMessage({ error: (e as Error).stack ?? String(e) });
}
