-- Grain: one row per census date (census_date) that keeps every row-level rule of the contract
-- (contracts/social_services/shelter_census.odcs.yaml); the others are in the quarantine model beside it.

with

shelter_census as (

    {{ passing_rows(ref('stg_social_services__shelter_census')) }}

),

final as (

    select
        census_date,
        total_adults,
        total_children,
        total_individuals,
        single_adult_men,
        single_adult_women,
        total_single_adults,
        families_with_children,
        adults_in_families_with_children,
        children_in_families_with_children,
        individuals_in_families_with_children,
        adult_families,
        individuals_in_adult_families

    from shelter_census

)

select * from final
