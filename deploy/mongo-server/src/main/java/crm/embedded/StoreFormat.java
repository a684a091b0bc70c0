package crm.embedded;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;

import org.h2.mvstore.MVMap;
import org.h2.mvstore.MVStore;

import de.bwaldvogel.mongo.bson.Document;

/**
 * The store file's format, and the one-time conversion of a file written before it.
 *
 * <p>Format 3 (this launcher): documents are BSON ({@link BsonDocumentType}), each stored under
 * the number it was inserted as ({@link Storage.Collection_}), and indexes live in memory
 * ({@link MemoryUniqueIndex}, {@link SecondaryIndex}). Older files are converted when the
 * server starts on them:
 * <ul>
 *   <li>format 2 (this launcher until then): documents as BSON, stored under their {@code _id};
 *   <li>format 1 (the plain H2 backend): documents and unique indexes in Java serialization,
 *       stored under their {@code _id}.
 * </ul>
 * Their documents (numbered in the old file's order) and collection metadata are copied into
 * a new file, which then replaces the old one in one rename. Index maps are not copied: the
 * indexes are rebuilt from the documents. If the conversion is interrupted, the old file is
 * untouched and the next start converts it again.
 */
final class StoreFormat {

    static final String FORMAT_MAP = "crm.format";
    static final String FORMAT_KEY = "format";
    static final int CURRENT = 3;

    private static final String DATABASES_PREFIX = "databases.";
    private static final String META_PREFIX = "meta.";

    private StoreFormat() {
    }

    /** A store written by a newer build of this server, in a format this one cannot read. */
    static final class TooNew extends IOException {
        TooNew(Path data, int format) {
            super(data + " is in store format " + format + ", newer than this server's (" + CURRENT
                + "): run the build that wrote it, or a newer one. The file is left as it is.");
        }
    }

    /**
     * Converts {@code data} to the current format if it holds data in an older one; refuses a
     * newer one ({@link TooNew}): read as this format, its documents would be misread, and
     * marking it would hide that from the build that wrote it.
     */
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
            int format = formatOf(from);
            if (format > CURRENT) {
                throw new TooNew(data, format);
            }
            if (format == CURRENT) {
                return;
            }
            System.err.printf("converting %s from store format %d to %d (documents numbered in order) ...%n",
                data, format, CURRENT);
            MVStore to = new MVStore.Builder().fileName(converted.toString()).open();
            try {
                for (String name : from.getMapNames()) {
                    if (name.startsWith(DATABASES_PREFIX)) {
                        MVMap<Object, Document> source = format == 1
                            ? from.openMap(name) // values in Java serialization
                            : from.openMap(name, Storage.Database.documentMap());
                        MVMap<Object, Document> target = to.openMap(name, Storage.Database.documentMap());
                        long key = 0;
                        for (Document document : source.values()) {
                            target.put(++key, document);
                            documents++;
                        }
                        collections++;
                    } else if (name.startsWith(META_PREFIX)) {
                        MVMap<Object, Object> source = from.openMap(name);
                        to.openMap(name).putAll(source);
                    }
                    // anything else is a unique index's map (format 1): rebuilt from the documents
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

    /** The format mark's value; the current format for an empty file; 1 for the plain H2 backend's. */
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
