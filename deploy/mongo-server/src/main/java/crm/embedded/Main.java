package crm.embedded;

import java.net.InetSocketAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.CountDownLatch;

import org.h2.mvstore.MVStore;

import de.bwaldvogel.mongo.MongoDatabase;
import de.bwaldvogel.mongo.MongoServer;
import de.bwaldvogel.mongo.MongoVersion;
import de.bwaldvogel.mongo.backend.Utils;
import de.bwaldvogel.mongo.backend.h2.H2Backend;
import de.bwaldvogel.mongo.bson.Document;
import io.netty.channel.Channel;

/**
 * The embedded MongoDB-wire server of deploy/local.sh: mongo-java-server on its persistent
 * H2 MVStore backend, bound to one loopback address.
 *
 * <p>Two things differ from the library's defaults:
 *
 * <ul>
 *   <li>It reports MongoDB 5.0 with wire version 13. The library's own MONGO_5_0 reports
 *       wire version 8, which PyMongo 4.14 and later refuse (they need 9 or more). The
 *       commands our services send are the 5.0 subset the library implements.
 *   <li>An acknowledged write survives a crash of this process. MVStore commits on a
 *       delay (about a second) by default, so a SIGKILL lost the last writes; here every
 *       write command commits the store before its reply is sent. The commit writes to the
 *       file without an fsync: the bytes are in the operating system's page cache, which
 *       a process crash does not lose (a power loss still can).
 * </ul>
 */
public final class Main {

    /** Commands that change stored data; each commits the store before it is acknowledged. */
    static final Set<String> WRITE_COMMANDS = Set.of(
        "insert", "update", "delete", "findandmodify", "create", "createindexes", "drop",
        "dropindexes", "dropdatabase", "renamecollection");

    static final int WORKER_THREADS = 32;
    static final int CACHE_MB = Integer.getInteger("crm.cacheMb", 32);

    static final MongoVersion MONGO_5_0_WIRE_13 = new MongoVersion() {
        @Override
        public List<Integer> getVersionArray() {
            return List.of(5, 0, 0);
        }

        @Override
        public int getWireVersion() {
            return 13;
        }
    };

    /**
     * Group commit: a writer waits until a commit that started after its write has finished.
     * One writer at a time runs the commit (the leader); everyone whose write was applied
     * before that commit started is released by it, so concurrent writers share commits.
     */
    static final class GroupCommit {
        private final MVStore store;
        private long applied;   // writes applied to the in-memory maps, numbered
        private long committed; // every write numbered up to this one is in the file
        private boolean committing;

        GroupCommit(MVStore store) {
            this.store = store;
        }

        void awaitCommitted() {
            long mine;
            synchronized (this) {
                mine = ++applied;
            }
            while (true) {
                long upTo;
                synchronized (this) {
                    while (committed < mine && committing) {
                        try {
                            wait();
                        } catch (InterruptedException e) {
                            Thread.currentThread().interrupt();
                            throw new IllegalStateException("interrupted while committing", e);
                        }
                    }
                    if (committed >= mine) {
                        return;
                    }
                    committing = true;
                    upTo = applied;
                }
                boolean ok = false;
                try {
                    store.commit();
                    ok = true;
                } finally {
                    synchronized (this) {
                        committing = false;
                        if (ok) {
                            committed = Math.max(committed, upTo);
                        }
                        notifyAll();
                    }
                }
            }
        }
    }

    /**
     * The H2 backend; a write command is acknowledged only once the store is committed,
     * and filters that name an {@code _id} use the {@code _id} index ({@link Storage}).
     */
    static final class DurableH2Backend extends H2Backend {
        private final GroupCommit groupCommit;

        DurableH2Backend(MVStore store, boolean commitEachWrite) {
            super(store);
            this.groupCommit = commitEachWrite ? new GroupCommit(store) : null;
        }

        @Override
        protected MongoDatabase openOrCreateDatabase(String databaseName) {
            return new Storage.Database(databaseName, getMvStore(), getCursorRegistry());
        }

        @Override
        public Document handleCommand(Channel channel, String database, String command, Document query) {
            if (command.equalsIgnoreCase("hello")) {
                // MongoDB 5.0's name for isMaster, which the library answers under the old name only.
                Document reply = super.handleCommand(channel, database, "isMaster", query);
                reply.put("isWritablePrimary", Boolean.TRUE);
                return reply;
            }
            if (database.equals("admin") && command.equalsIgnoreCase("listDatabases")) {
                return listDatabases();
            }
            try {
                Document reply = super.handleCommand(channel, database, command, query);
                if (groupCommit != null && WRITE_COMMANDS.contains(command.toLowerCase(Locale.ROOT))) {
                    groupCommit.awaitCommitted();
                }
                return reply;
            } catch (RuntimeException e) {
                haltIfClosed(e);
                throw e;
            }
        }

        /**
         * The databases, with the fields the library gives (name, empty), from the open ones.
         * The library opened each database anew to list it: every collection and every
         * in-memory index rebuilt from all of its documents (20 s at 10,000 accounts, and
         * the garbage of it), for its name.
         */
        private Document listDatabases() {
            List<Document> databases = new ArrayList<>();
            for (String name : new TreeSet<>(listDatabaseNames())) {
                databases.add(new Document("name", name).append("empty", resolveDatabase(name).isEmpty()));
            }
            Document reply = new Document("databases", databases);
            Utils.markOkay(reply);
            return reply;
        }

        /**
         * H2 closes a store whose commit failed (in a command's commit or in its background
         * writer), and every later command would fail with "This store is closed" while the
         * process looked alive. Exit instead: what was acknowledged is in the file, and
         * whoever runs the server sees it stop.
         */
        private void haltIfClosed(RuntimeException cause) {
            if (getMvStore().isClosed()) {
                System.err.println("the store is closed (a commit failed); exiting");
                cause.printStackTrace();
                Runtime.getRuntime().halt(70);
            }
        }
    }

    /**
     * Netty's buffer allocator, set before any Netty class loads (a {@code -D} on the command
     * line wins). Netty 4.2's default, the adaptive allocator, keeps chunks of up to 8 MB for
     * its event-loop threads (32 here): under concurrent batches (24 clients writing 1.5 MB
     * each) it held 60 of the 64 MB of direct memory the launcher allows, and a request that
     * could not get a buffer closed its connection, or was never answered. Unpooled buffers
     * hold direct memory only while a request is read or a reply written.
     */
    static final String NETTY_ALLOCATOR = "unpooled";

    /**
     * The largest temporary direct buffer the JDK keeps per thread after copying a heap buffer
     * to a socket or file (replies are encoded on the heap). Unbounded by default: each of the
     * 32 event-loop threads would keep one as large as the largest reply it ever wrote.
     */
    static final String JDK_MAX_CACHED_BUFFER = String.valueOf(256 * 1024);

    /** Sets a system property unless the command line did (read when their classes load). */
    private static void defaultProperty(String name, String value) {
        if (System.getProperty(name) == null) {
            System.setProperty(name, value);
        }
    }

    public static void main(String[] args) throws Exception {
        defaultProperty("io.netty.allocator.type", NETTY_ALLOCATOR);
        defaultProperty("jdk.nio.maxCachedBufferSize", JDK_MAX_CACHED_BUFFER);
        String host = "127.0.0.1";
        int port = 27017;
        Path data = null;
        boolean commitEachWrite = true;
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--host" -> host = args[++i];
                case "--port" -> port = Integer.parseInt(args[++i]);
                case "--data" -> data = Path.of(args[++i]);
                case "--commit-delayed" -> commitEachWrite = false;
                default -> {
                    System.err.println("usage: Main [--host H] [--port P] --data FILE [--commit-delayed]");
                    System.exit(2);
                }
            }
        }
        if (data == null) {
            System.err.println("--data FILE is required (the MVStore file)");
            System.exit(2);
        }
        if (!host.startsWith("127.") && !host.equals("::1") && !host.equals("localhost")) {
            System.err.println("refusing to bind " + host + ": the embedded server listens on loopback only");
            System.exit(2);
        }
        Files.createDirectories(data.toAbsolutePath().getParent());

        try {
            StoreFormat.upgrade(data);
        } catch (StoreFormat.TooNew e) {
            System.err.println(e.getMessage());
            System.exit(2);
        }
        MVStore store = new MVStore.Builder().fileName(data.toString()).cacheSize(CACHE_MB).open();
        StoreFormat.mark(store);
        store.commit();
        DurableH2Backend backend = new DurableH2Backend(store, commitEachWrite);
        backend.version(MONGO_5_0_WIRE_13);
        MongoServer server = new MongoServer(backend);
        // Commands run on Netty's event-loop threads and a write waits there for its commit:
        // enough threads that waiting writers do not hold up everyone else.
        server.bind(new InetSocketAddress(host, port), 1, WORKER_THREADS);
        System.err.printf("embedded mongo ready on %s:%d (data %s, %s)%n", host, port, data,
            commitEachWrite ? "commit before acknowledging each write" : "delayed commits");

        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            server.shutdown(); // closes the backend, which commits and closes the store
            stopped.countDown();
        }, "shutdown"));
        stopped.await();
    }
}
