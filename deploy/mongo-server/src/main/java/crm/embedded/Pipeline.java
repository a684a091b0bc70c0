package crm.embedded;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.PriorityQueue;
import java.util.function.Supplier;

import de.bwaldvogel.mongo.backend.DocumentComparator;
import de.bwaldvogel.mongo.backend.Missing;
import de.bwaldvogel.mongo.backend.ValueComparator;
import de.bwaldvogel.mongo.backend.aggregation.accumulator.Accumulator;
import de.bwaldvogel.mongo.bson.Document;

/**
 * Runs the stages of a pipeline that follow its first {@code $match}, over the documents
 * that match found, with two stages done here and every other one by the library.
 *
 * <ul>
 *   <li>{@code $group} whose {@code _id} is a field path and whose accumulators' arguments
 *       are field paths, literals, {@code $cond} and {@code $eq}: grouped in a hash map, with
 *       each path split once. The library evaluated every expression through a regex split of
 *       its path and kept the groups in a tree ordered by its value comparator; those two were
 *       most of identity's pending list (25,000 grants grouped by address). The library's own
 *       accumulators ({@code $first}, {@code $push}, {@code $max}, ...) do the accumulating, so
 *       their rules for null and missing values stay the library's. Anything else, at parse
 *       time or on a value met (an array on a path, a key that is not a string), is the
 *       library's group, over the same documents.
 *   <li>{@code $sort} followed by {@code $limit} (with a {@code $skip} between or not): the
 *       first {@code skip + limit} documents are kept in a bounded heap, in the library's
 *       order, ties in arrival order as its stable sort keeps them. The library sorted every
 *       group (25,000) to keep 50.
 * </ul>
 *
 * The groups come out in the library's order (by {@code _id}, ascending), except when that
 * order cannot show: the next stage (after any {@code $match}) counts them, or sorts them by
 * keys that include {@code _id}.
 */
final class Pipeline {

    /** Runs a run of consecutive stages with the library (an aggregation of those stages). */
    interface Library {
        List<Document> run(List<Document> stages, List<Document> documents);
    }

    private Pipeline() {
    }

    static List<Document> run(List<Document> stages, List<Document> documents, Library library) {
        List<Document> current = documents;
        List<Document> pending = new ArrayList<>();
        for (int i = 0; i < stages.size(); i++) {
            Document stage = stages.get(i);
            List<Document> done = null;
            if (stage.size() == 1 && stage.get("$group") instanceof Document spec) {
                Grouping grouping = Grouping.of(spec, orderHidden(stages, i + 1));
                if (grouping != null) {
                    current = flush(pending, current, library);
                    done = grouping.apply(current);
                }
            } else if (stage.size() == 1 && stage.get("$sort") instanceof Document orderBy) {
                long kept = keptBySort(stages, i);
                if (kept > 0 && kept <= Storage.Collection_.HEAP_SORT_MAX) {
                    current = flush(pending, current, library);
                    done = first(current.iterator(), new DocumentComparator(orderBy), (int) kept);
                }
            }
            if (done == null) {
                pending.add(stage);
            } else {
                current = done;
            }
        }
        return flush(pending, current, library);
    }

    private static List<Document> flush(List<Document> pending, List<Document> documents, Library library) {
        if (pending.isEmpty()) {
            return documents;
        }
        List<Document> result = library.run(new ArrayList<>(pending), documents);
        pending.clear();
        return result;
    }

    /**
     * Whether the order of the documents before stage {@code from} cannot show: the first
     * stage after it other than {@code $match} (which keeps the order) counts them, or sorts
     * them by keys that include {@code _id} (unique among groups, so none tie).
     */
    private static boolean orderHidden(List<Document> stages, int from) {
        for (Document stage : stages.subList(from, stages.size())) {
            if (stage.size() != 1) {
                return false;
            }
            if (stage.containsKey("$match")) {
                continue;
            }
            return stage.containsKey("$count")
                || (stage.get("$sort") instanceof Document orderBy && orderBy.containsKey("_id"));
        }
        return false;
    }

    /** How many documents a {@code $sort} at {@code index} needs to keep: skip + limit after it; 0: all. */
    private static long keptBySort(List<Document> stages, int index) {
        long skip = 0;
        int next = index + 1;
        if (next < stages.size()) {
            Integer value = Storage.Counting.stageNumber(stages.get(next), "$skip");
            if (value != null) {
                skip = value;
                next++;
            }
        }
        if (next < stages.size()) {
            Integer limit = Storage.Counting.stageNumber(stages.get(next), "$limit");
            if (limit != null && limit > 0) {
                return skip + limit;
            }
        }
        return 0;
    }

    /**
     * The first {@code kept} documents in the order of {@code byValues}, kept in a bounded heap
     * instead of sorting all of them; documents that compare equal keep their arrival order,
     * as the library's stable sort keeps them. Also the sorted page of a query ({@link Storage}).
     */
    static List<Document> first(Iterator<Document> documents, Comparator<Document> byValues, int kept) {
        Comparator<Ranked> order = Comparator.<Ranked, Document>comparing(Ranked::document, byValues)
            .thenComparingLong(Ranked::arrival);
        PriorityQueue<Ranked> heap = new PriorityQueue<>(kept + 1, order.reversed());
        long arrival = 0;
        while (documents.hasNext()) {
            Ranked ranked = new Ranked(documents.next(), arrival++);
            if (heap.size() < kept) {
                heap.add(ranked);
            } else if (order.compare(ranked, heap.peek()) < 0) {
                heap.poll();
                heap.add(ranked);
            }
        }
        List<Ranked> sorted = new ArrayList<>(heap);
        sorted.sort(order);
        List<Document> result = new ArrayList<>(sorted.size());
        for (Ranked ranked : sorted) {
            result.add(ranked.document());
        }
        return result;
    }

    private record Ranked(Document document, long arrival) {
    }

    /** Thrown (without a stack) when a value met is not one {@link Grouping} handles. */
    private static final class Unsupported extends RuntimeException {
        private static final Unsupported INSTANCE = new Unsupported();

        private Unsupported() {
            super(null, null, false, false);
        }
    }

    /** A compiled expression: a field path, a literal, {@code $cond} or {@code $eq}. */
    private interface Expr {
        Object evaluate(Document document);

        static Expr compile(Object expression) {
            if (expression instanceof String text) {
                if (text.startsWith("$$")) {
                    return null; // a variable: the library's
                }
                if (text.startsWith("$")) {
                    String[] path = text.substring(1).split("\\.", -1);
                    for (String part : path) {
                        if (part.isEmpty()) {
                            return null;
                        }
                    }
                    return document -> resolve(document, path);
                }
                return document -> text;
            }
            if (expression == null || expression instanceof Number || expression instanceof Boolean) {
                return document -> expression;
            }
            if (!(expression instanceof Document operator) || operator.size() != 1) {
                return null;
            }
            if (operator.get("$eq") instanceof List<?> operands && operands.size() == 2) {
                Expr left = compile(operands.get(0));
                Expr right = compile(operands.get(1));
                return left == null || right == null ? null : document -> equal(left.evaluate(document),
                    right.evaluate(document));
            }
            Object cond = operator.get("$cond");
            List<?> parts = null;
            if (cond instanceof List<?> list && list.size() == 3) {
                parts = list;
            } else if (cond instanceof Document named && named.size() == 3 && named.containsKey("if")
                && named.containsKey("then") && named.containsKey("else")) {
                parts = List.of(named.get("if"), named.get("then"), named.get("else"));
            }
            if (parts == null) {
                return null;
            }
            Expr test = compile(parts.get(0));
            Expr then = compile(parts.get(1));
            Expr otherwise = compile(parts.get(2));
            if (test == null || then == null || otherwise == null) {
                return null;
            }
            return document -> {
                if (!(test.evaluate(document) instanceof Boolean truth)) {
                    throw Unsupported.INSTANCE; // truthiness of other values: the library's
                }
                return truth ? then.evaluate(document) : otherwise.evaluate(document);
            };
        }

        /** The value at a path: missing when a part is absent or leads through a non-document. */
        private static Object resolve(Document document, String[] path) {
            Object value = document;
            for (String part : path) {
                if (value instanceof Document current) {
                    Object found = current.get(part);
                    value = found != null || current.containsKey(part) ? found : Missing.getInstance();
                } else if (value instanceof List<?>) {
                    throw Unsupported.INSTANCE; // a path through an array: the library's
                } else {
                    return Missing.getInstance();
                }
            }
            if (value instanceof List<?> || value instanceof Document) {
                throw Unsupported.INSTANCE;
            }
            return value;
        }

        /** MongoDB's {@code $eq} on two scalars; a missing value equals no value (null included: the library's). */
        private static Boolean equal(Object left, Object right) {
            boolean leftMissing = left instanceof Missing;
            boolean rightMissing = right instanceof Missing;
            if (leftMissing || rightMissing) {
                if (left == null || right == null || (leftMissing && rightMissing)) {
                    throw Unsupported.INSTANCE;
                }
                return Boolean.FALSE;
            }
            return ValueComparator.asc().compare(left, right) == 0;
        }
    }

    /** A {@code $group} done in a hash map (see the class comment); null from {@link #of} when not. */
    private record Grouping(Expr id, List<String> fields, List<Supplier<Accumulator>> suppliers,
                            List<Expr> arguments, boolean ordered) {

        static Grouping of(Document spec, boolean unordered) {
            if (!spec.containsKey("_id") || !(spec.get("_id") instanceof String idPath) || !idPath.startsWith("$")) {
                return null;
            }
            Expr id = Expr.compile(idPath);
            Map<String, Supplier<Accumulator>> parsed;
            try {
                parsed = Accumulator.parse(spec);
            } catch (RuntimeException invalid) {
                return null; // the library reports it
            }
            List<String> fields = new ArrayList<>();
            List<Supplier<Accumulator>> suppliers = new ArrayList<>();
            List<Expr> arguments = new ArrayList<>();
            for (Map.Entry<String, Supplier<Accumulator>> entry : parsed.entrySet()) {
                Expr argument = Expr.compile(entry.getValue().get().getExpression());
                if (argument == null) {
                    return null;
                }
                fields.add(entry.getKey());
                suppliers.add(entry.getValue());
                arguments.add(argument);
            }
            return id == null ? null : new Grouping(id, fields, suppliers, arguments, !unordered);
        }

        /** The groups, or the library's answer when a value met is not one handled here. */
        List<Document> apply(List<Document> documents) {
            Map<String, Accumulator[]> groups = new HashMap<>();
            Accumulator[] ofNull = null;
            try {
                for (Document document : documents) {
                    Object key = id.evaluate(document);
                    Accumulator[] group;
                    if (key == null || key instanceof Missing) {
                        if (ofNull == null) {
                            ofNull = accumulators();
                        }
                        group = ofNull;
                    } else if (key instanceof String text) {
                        group = groups.computeIfAbsent(text, ignored -> accumulators());
                    } else {
                        throw Unsupported.INSTANCE;
                    }
                    for (int i = 0; i < group.length; i++) {
                        group[i].aggregate(arguments.get(i).evaluate(document));
                    }
                }
            } catch (Unsupported unsupported) {
                return null;
            }
            List<Map.Entry<String, Accumulator[]>> entries = new ArrayList<>(groups.entrySet());
            if (ordered) {
                entries.sort(Map.Entry.comparingByKey(ValueComparator.asc()));
            }
            List<Document> result = new ArrayList<>(entries.size() + 1);
            if (ofNull != null) {
                result.add(output(null, ofNull));
            }
            for (Map.Entry<String, Accumulator[]> entry : entries) {
                result.add(output(entry.getKey(), entry.getValue()));
            }
            return result;
        }

        private Accumulator[] accumulators() {
            Accumulator[] group = new Accumulator[suppliers.size()];
            for (int i = 0; i < group.length; i++) {
                group[i] = suppliers.get(i).get();
            }
            return group;
        }

        private Document output(Object key, Accumulator[] group) {
            Document document = new Document("_id", key);
            for (int i = 0; i < group.length; i++) {
                document.put(fields.get(i), group[i].getResult());
            }
            return document;
        }
    }
}
