-- Grain: one row per census date (census_date), from its latest delivery; a date that
-- comes twice in one delivery keeps both copies for the contract to quarantine.
-- Dates arrive as MM/DD/YYYY text, counts as text.

with

source as (

    select * from {{ source('raw_social_services', 'shelter_census') }}

),

typed as (

    select
        to_date(nullif(trim(census_date), ''), 'MM/DD/YYYY') as census_date,
        nullif(trim(total_adults), '')::integer as total_adults,
        nullif(trim(total_children), '')::integer as total_children,
        nullif(trim(total_individuals), '')::integer as total_individuals,
        nullif(trim(single_adult_men), '')::integer as single_adult_men,
        nullif(trim(single_adult_women), '')::integer as single_adult_women,
        nullif(trim(total_single_adults), '')::integer as total_single_adults,
        nullif(trim(families_with_children), '')::integer as families_with_children,
        nullif(trim(adults_in_families_with_children), '')::integer
            as adults_in_families_with_children,
        nullif(trim(children_in_families_with_children), '')::integer
            as children_in_families_with_children,
        nullif(trim(individuals_in_families_with_children), '')::integer
            as individuals_in_families_with_children,
        nullif(trim(adult_families), '')::integer as adult_families,
        nullif(trim(individuals_in_adult_families), '')::integer
            as individuals_in_adult_families,

        ---------- load metadata
        _load_id,
        _loaded_at

    from source

),

final as (

    {{ latest_delivery('typed', 'census_date') }}

)

select * from final
