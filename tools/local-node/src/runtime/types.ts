/**
 * The shared types of the local node's container runtime (contract of issue #16): what the kubelet side asks the
 * runtime to run (ContainerSpec) and what it reads back (ContainerRecord, ContainerState).
 */

/** One mount of a container, applied in order inside the container's private mount namespace. */
export interface Mount {
  readonly containerPath: string;        // absolute path inside the container
  readonly hostPath?: string;            // bind source (file or dir); absent for tmpfs
  readonly kind: 'bind' | 'tmpfs';
  readonly readOnly: boolean;
  readonly sizeBytes?: number;           // tmpfs size
}

/** Everything the runtime needs to run one container of a pod as local processes. */
export interface ContainerSpec {
  readonly podUid: string;
  readonly podKey: string;               // "<namespace>/<name>", for messages
  readonly container: string;            // container name
  readonly restartCount: number;         // 0 for the first run of this container in this pod
  readonly argv: readonly string[];      // argv[0] resolved by PATH of `env` if not absolute
  readonly env: Readonly<Record<string, string>>;  // the whole environment (nothing inherited from the agent)
  readonly workingDir: string;
  readonly mounts: readonly Mount[];     // applied in order, in a private mount namespace
  readonly user?: { readonly uid: number; readonly gid: number };
  readonly readOnlyRoot?: boolean;
  readonly limits: { readonly memoryBytes?: number; readonly cpuMillis?: number; readonly pids?: number };
  readonly terminationMessagePath: string;   // container path (default /dev/termination-log)
  readonly netns?: string;               // path of a network namespace to join (/run/netns/<name>); absent = host network
}

/** A container is running (pid = its process group id) or has exited (its exit code, reason and message). */
export type ContainerState =
  | { readonly state: 'running'; readonly pid: number; readonly startedAt: Date }
  | { readonly state: 'exited'; readonly exitCode: number; readonly signal?: string; readonly reason: 'Completed' | 'Error' | 'OOMKilled'; readonly message: string; readonly startedAt: Date; readonly finishedAt: Date };

/** What the runtime's state dir knows of one container run. */
export interface ContainerRecord { readonly id: string; readonly spec: ContainerSpec; readonly status: ContainerState }
