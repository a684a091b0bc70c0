package crm.embedded;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.Map;

import org.h2.mvstore.MVMap;
import org.h2.mvstore.MVStore;

import de.bwaldvogel.mongo.bson.Document;

/**
 * The store file's format, and the one-time conversion of a file written before it.
 *
 * <p>Format 2 (this launcher): documents are BSON ({@link BsonDocumentType}) and indexes live
 * in memory ({@link MemoryUniqueIndex}, {@link SecondaryIndex}). A file written by the plain
 * H2 backend (format 1: documents and unique indexes in Java serialization) is converted when
 * the server starts on it: its documents and collection metadata are copied into a new file,
 * which then replaces the old one in one rename. Its index maps are not copied: the indexes
 * are rebuilt from the documents. If the conversion is interrupted, the old file is untouched
 * and the next start converts it again.
 */
final class StoreFormat {

    static final String FORMAT_MAP = "crm.format";
    static final String FORMAT_KEY = "format";
    static final int CURRENT = 2;

    private static final String DATABASES_PREFIX = "databases.";
    private static final String META_PREFIX = "meta.";

    private StoreFormat() {
    }

    /** Converts {@code data} to the current format if it holds data in the old one. */
    static void upgrade(Path data) throws IOException {
        if (!Files.exists(data)) {
            return;
        }
        Path converted = data.resolveSibling(data.getFileName() + ".converting");
        Files.deleteIfExists(converted);
        long documents = 0;
        int collections = 0;
        MVStore from = new MVStore.Builder().fileName(data.toString()).readOnly().open();
        try {
            if (formatOf(from) >= CURRENT) {
                return;
            }
            System.err.printf("converting %s to store format %d (documents as BSON) ...%n", data, CURRENT);
            MVStore to = new MVStore.Builder().fileName(converted.toString()).open();
            try {
                for (String name : from.getMapNames()) {
                    if (name.startsWith(DATABASES_PREFIX)) {
                        MVMap<Object, Object> source = from.openMap(name);
                        MVMap<Object, Document> target = to.openMap(name, Storage.Database.documentMap());
                        for (Map.Entry<Object, Object> entry : source.entrySet()) {
                            target.put(entry.getKey(), (Document) entry.getValue());
                            documents++;
                        }
                        collections++;
                    } else if (name.startsWith(META_PREFIX)) {
                        MVMap<Object, Object> source = from.openMap(name);
                        to.openMap(name).putAll(source);
                    }
                    // anything else is a unique index's map: rebuilt from the documents
                }
                mark(to);
                to.commit();
            } finally {
                to.close();
            }
        } finally {
            from.close();
        }
        Files.move(converted, data, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        System.err.printf("converted %d documents in %d collections%n", documents, collections);
    }

    /** Records the current format in a store (new or converted). */
    static void mark(MVStore store) {
        MVMap<String, Integer> format = store.openMap(FORMAT_MAP);
        if (!Integer.valueOf(CURRENT).equals(format.get(FORMAT_KEY))) {
            format.put(FORMAT_KEY, CURRENT);
        }
    }

    /** 2 for a file with the format mark or nothing in it yet; 1 for the plain H2 backend's. */
    private static int formatOf(MVStore store) {
        if (store.hasMap(FORMAT_MAP)) {
            Object format = store.openMap(FORMAT_MAP).get(FORMAT_KEY);
            return format instanceof Integer value ? value : 1;
        }
        for (String name : store.getMapNames()) {
            if (name.startsWith(DATABASES_PREFIX) || name.startsWith(META_PREFIX)) {
                return 1;
            }
        }
        return CURRENT;
    }
}
