// Apache ZooKeeper reference for keeper-bench: the same workload (create, set, get, exists with
// N requests in flight over S sessions, then one synchronous create at a time) through the
// official Java client's async API. Compiled and run by keeper_bench.sh against Debian's
// `zookeeper` package; prints lines in keeper-bench's format.
import java.util.*;
import java.util.concurrent.*;
import java.util.concurrent.atomic.*;
import org.apache.zookeeper.*;
import org.apache.zookeeper.data.Stat;

public class ZkBench {
    static String connect = "127.0.0.1:2181";
    static int inflight = 1000, sessions = 10, ops = 50000, syncOps = 2000, size = 100;

    interface Op { void start(ZooKeeper zk, String path, byte[] data, Runnable done); }

    static void phase(String name, List<ZooKeeper> zks, String root, byte[] data, Op op) throws Exception {
        Semaphore window = new Semaphore(inflight);
        long[] lat = new long[ops];
        CountDownLatch all = new CountDownLatch(ops);
        AtomicInteger failed = new AtomicInteger();
        long start = System.nanoTime();
        for (int i = 0; i < ops; i++) {
            window.acquire();
            final int n = i;
            final long t0 = System.nanoTime();
            op.start(zks.get(i % zks.size()), root + "/n" + i, data, () -> {
                lat[n] = System.nanoTime() - t0;
                window.release();
                all.countDown();
            });
        }
        all.await();
        double secs = (System.nanoTime() - start) / 1e9;
        report(name, ops, secs, lat);
    }

    static void report(String name, int n, double secs, long[] lat) {
        Arrays.sort(lat);
        System.out.printf("%-8s %8d ops  %10.0f ops/s  p50 %7.2f ms  p99 %7.2f ms  max %7.2f ms%n", name, n, n / secs,
            lat[(int) Math.round((lat.length - 1) * 0.50)] / 1e6, lat[(int) Math.round((lat.length - 1) * 0.99)] / 1e6,
            lat[lat.length - 1] / 1e6);
    }

    public static void main(String[] args) throws Exception {
        for (int i = 0; i + 1 < args.length; i += 2) {
            switch (args[i]) {
                case "--connect": connect = args[i + 1]; break;
                case "--inflight": inflight = Integer.parseInt(args[i + 1]); break;
                case "--sessions": sessions = Integer.parseInt(args[i + 1]); break;
                case "--ops": ops = Integer.parseInt(args[i + 1]); break;
                case "--sync-ops": syncOps = Integer.parseInt(args[i + 1]); break;
                case "--size": size = Integer.parseInt(args[i + 1]); break;
                default: throw new IllegalArgumentException(args[i]);
            }
        }
        List<ZooKeeper> zks = new ArrayList<>();
        for (int i = 0; i < sessions; i++) {
            CountDownLatch up = new CountDownLatch(1);
            ZooKeeper zk = new ZooKeeper(connect, 30000, e -> { if (e.getState() == Watcher.Event.KeeperState.SyncConnected) up.countDown(); });
            if (!up.await(30, TimeUnit.SECONDS)) throw new RuntimeException("no connection to " + connect);
            zks.add(zk);
        }
        String root = "/zk-bench-" + System.currentTimeMillis();
        zks.get(0).create(root, new byte[0], ZooDefs.Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
        byte[] data = new byte[size];
        Arrays.fill(data, (byte) 'x');
        System.out.printf("zk-bench: %d ops per phase, %d in flight over %d sessions, %d-byte values, %s%n", ops, inflight, sessions, size, connect);
        phase("create", zks, root, data, (zk, p, d, done) -> zk.create(p, d, ZooDefs.Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT, (rc, path, ctx, name) -> done.run(), null));
        phase("set", zks, root, data, (zk, p, d, done) -> zk.setData(p, d, -1, (rc, path, ctx, stat) -> done.run(), null));
        phase("get", zks, root, data, (zk, p, d, done) -> zk.getData(p, false, (rc, path, ctx, bytes, stat) -> done.run(), null));
        phase("exists", zks, root, data, (zk, p, d, done) -> zk.exists(p, false, (rc, path, ctx, stat) -> done.run(), null));
        long[] lat = new long[syncOps];
        long start = System.nanoTime();
        for (int i = 0; i < syncOps; i++) {
            long t0 = System.nanoTime();
            zks.get(0).create(root + "/s" + i, data, ZooDefs.Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
            lat[i] = System.nanoTime() - t0;
        }
        report("sync-create", syncOps, (System.nanoTime() - start) / 1e9, lat);
        for (ZooKeeper zk : zks) zk.close();
    }
}
