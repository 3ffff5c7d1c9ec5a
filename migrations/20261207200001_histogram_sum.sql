-- Histograms (see 20261207100001) added up by an aggregate, element by element: a report reads
-- where each place's checks landed and the histogram of their routes' hop counts in one pass
-- over the hourly landing counts, instead of one pass for each.
CREATE OR REPLACE AGGREGATE geoctl_histogram_sum(integer[]) (
    SFUNC = geoctl_histogram_add,
    STYPE = integer[],
    PARALLEL = SAFE
);
