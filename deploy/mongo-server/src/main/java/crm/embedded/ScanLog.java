package crm.embedded;

import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.LongAdder;

import de.bwaldvogel.mongo.bson.Document;

/**
 * Counts the filters that the library may answer by scanning a collection (shape only:
 * collection and field names), and prints the counts every 10 seconds to standard error.
 * Off unless the system property {@code crm.scanlog} is true: a tool for finding the
 * queries that grow with the data (deploy/local.sh sets it from LOCAL_MONGO_SCAN_LOG=1).
 */
final class ScanLog {

    static final boolean ENABLED = List.of("1", "true").contains(System.getProperty("crm.scanlog", ""));
    private static final Map<String, LongAdder> COUNTS = new ConcurrentHashMap<>();

    static {
        if (ENABLED) {
            Thread printer = new Thread(ScanLog::printForever, "scan-log");
            printer.setDaemon(true);
            printer.start();
        }
    }

    private ScanLog() {
    }

    static void record(String collection, Document query) {
        if (ENABLED) {
            COUNTS.computeIfAbsent(collection + " " + query.keySet(), key -> new LongAdder()).increment();
        }
    }

    private static void printForever() {
        while (true) {
            try {
                Thread.sleep(10_000);
            } catch (InterruptedException e) {
                return;
            }
            StringBuilder out = new StringBuilder("scans (collection, filter fields: count):");
            COUNTS.entrySet().stream()
                .sorted((a, b) -> Long.compare(b.getValue().sum(), a.getValue().sum()))
                .limit(25)
                .forEach(e -> out.append("\n  ").append(e.getKey()).append(": ").append(e.getValue().sum()));
            System.err.println(out);
        }
    }
}
